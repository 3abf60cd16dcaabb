"""Fuzz every RPC of the four fineserve services with hypothesis: random field values (enums out of range,
NaN, huge and negative numbers, long and odd strings, ids of other tenants), random bytes and hostile
images for image fields, random and hostile archives for uploads, random texts.

Whatever comes in: no INTERNAL/UNKNOWN status, the server process stays up, health stays SERVING, another
tenant's data is untouched, and the model stored before the fuzz answers exactly as it did. The RPC list is
read from the service descriptors, so a new RPC is fuzzed the day it is added.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import os
import tarfile
import time
import zipfile

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor as FD
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fineserve.v1 import datasets_pb2, inference_pb2, models_pb2, training_pb2
from security.conftest import SecureServer, Trained
from security.helpers import png, png_header_only, upload_requests

EXAMPLES = int(os.environ.get("FINESERVE_FUZZ_EXAMPLES", "5000"))
BAD = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS, grpc.StatusCode.UNAVAILABLE}
DESTRUCTIVE = {"DeleteDataset", "DeleteModel", "CancelJob"}
TEXT = st.characters(blacklist_categories=("Cs",))  # protobuf strings are UTF-8: no lone surrogates

RPCS = [
    (service.name, method)
    for module, name in ((datasets_pb2, "Datasets"), (training_pb2, "Training"), (models_pb2, "Models"),
                         (inference_pb2, "Inference"))
    for service in [module.DESCRIPTOR.services_by_name[name]]
    for method in service.methods
]


def _encoded(fmt: str, size: tuple[int, int] = (5, 4)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, fmt)
    return buf.getvalue()


SAMPLE_IMAGES = [png(16, 16, (220, 30, 30)), png(3, 70), png(1, 1), _encoded("JPEG"), _encoded("GIF"),
                 _encoded("BMP"), _encoded("WEBP"), _encoded("TIFF"), _encoded("PNG", (1001, 1000)),
                 png_header_only(30000, 30000), png_header_only(0, 0), png_header_only(2**31 - 1, 1),
                 png(16, 16)[:60], b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"\xff\xd8\xff"]


@st.composite
def images(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=300))
    if kind == 1:
        return draw(st.sampled_from(SAMPLE_IMAGES))
    if kind == 2:  # a valid PNG of random size and colour
        w, h = draw(st.integers(1, 40)), draw(st.integers(1, 40))
        return png(w, h, (draw(st.integers(0, 255)), draw(st.integers(0, 255)), draw(st.integers(0, 255))))
    good = draw(st.sampled_from(SAMPLE_IMAGES[:7]))  # a valid image with bytes flipped or cut
    cut = draw(st.integers(0, len(good)))
    return good[:cut] + draw(st.binary(max_size=20))


ENTRY_NAMES = st.one_of(
    st.text(TEXT, max_size=40),
    st.sampled_from(["train/a/1.png", "train/b/2.png", "valid/a/3.png", "../x.png", "/abs/x.png",
                     "a/../../x.png", "C:/x.png", "x\\..\\..\\y.png", "a" * 300 + ".png", "train/a/", ".",
                     "train//a//4.png", "train/a/../b/5.png", "\x00.png", "train/\u202eevil.png"]))


@st.composite
def archives(draw: st.DrawFn) -> tuple[bytes, int]:
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.binary(max_size=2000)), draw(st.sampled_from([datasets_pb2.ZIP, datasets_pb2.TAR]))
    entries = draw(st.dictionaries(ENTRY_NAMES, st.one_of(st.binary(max_size=100), images()), max_size=6))
    if kind == 3:  # a well-formed IMAGE_FOLDERS layout
        entries.update({f"train/{c}/{i}.png": png(4, 4) for c in "ab" for i in range(2)})
    if kind == 4:  # compressible: a ratio bomb past the floor
        entries["train/a/zeros.png"] = b"\0" * draw(st.sampled_from([1 << 19, 3 << 20]))
    if draw(st.booleans()):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in entries.items():
                with contextlib.suppress(ValueError, IndexError):  # names zipfile itself cannot write
                    zf.writestr(name, data)
        return buf.getvalue(), datasets_pb2.ZIP
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=draw(st.sampled_from(["w", "w:gz", "w:xz"]))) as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            kind = draw(st.sampled_from([tarfile.REGTYPE, tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                                         tarfile.LNKTYPE, tarfile.FIFOTYPE]))
            info.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = draw(st.sampled_from(["/etc/passwd", "../../x", "train/a/1.png"]))
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue(), datasets_pb2.TAR


INT_LIMITS = {FD.TYPE_INT32: 31, FD.TYPE_SINT32: 31, FD.TYPE_SFIXED32: 31, FD.TYPE_INT64: 63,
              FD.TYPE_SINT64: 63, FD.TYPE_SFIXED64: 63}
UINT_LIMITS = {FD.TYPE_UINT32: 32, FD.TYPE_FIXED32: 32, FD.TYPE_UINT64: 64, FD.TYPE_FIXED64: 64}


def _scalar(f: FD, pool: list[str]) -> st.SearchStrategy:
    if f.type == FD.TYPE_STRING:
        return st.one_of(st.text(TEXT, max_size=30), st.sampled_from(pool),
                         st.text(TEXT, min_size=990, max_size=1010))
    if f.type == FD.TYPE_BYTES:
        return images() if f.containing_type.name == "Image" else st.binary(max_size=300)
    if f.type == FD.TYPE_BOOL:
        return st.booleans()
    if f.type == FD.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in f.enum_type.values]), st.integers(-3, 40))
    if f.type in INT_LIMITS:
        bits = INT_LIMITS[f.type]
        return st.one_of(st.integers(-(2**bits), 2**bits - 1), st.sampled_from([0, 1, -1, 2, 3, 8, 16, 32, 1000]))
    if f.type in UINT_LIMITS:
        return st.integers(0, 2 ** UINT_LIMITS[f.type] - 1)
    if f.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        floats = st.floats(width=32 if f.type == FD.TYPE_FLOAT else 64)
        return st.one_of(floats, st.sampled_from([0.0, 1e-3, 0.5, 1.0, 2.0, -1.0, 1e300]))
    raise AssertionError(f"no strategy for {f.full_name}")


@st.composite
def messages(draw: st.DrawFn, cls: type, pool: list[str], depth: int = 0) -> object:
    msg = cls()
    desc = cls.DESCRIPTOR
    in_oneof: set[str] = set()
    chosen: list[FD] = []
    for oneof in desc.oneofs:
        in_oneof.update(f.name for f in oneof.fields)
        pick = draw(st.sampled_from([None, *oneof.fields]))
        if pick is not None:
            chosen.append(pick)
    chosen += [f for f in desc.fields if f.name not in in_oneof and draw(st.booleans())]
    for f in chosen:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            continue
        if f.type == FD.TYPE_MESSAGE:
            sub = message_factory.GetMessageClass(f.message_type)
            if depth >= 3:
                continue
            if f.is_repeated:
                top = 10 if f.message_type.name == "Image" else 3
                for item in draw(st.lists(messages(sub, pool, depth + 1), max_size=top)):
                    getattr(msg, f.name).add().CopyFrom(item)
            else:
                getattr(msg, f.name).CopyFrom(draw(messages(sub, pool, depth + 1)))
                getattr(msg, f.name).SetInParent()
        elif f.is_repeated:
            getattr(msg, f.name).extend(draw(st.lists(_scalar(f, pool), max_size=5)))
        else:
            setattr(msg, f.name, draw(_scalar(f, pool)))
    return msg


@st.composite
def uploads(draw: st.DrawFn, pool: list[str]) -> list[datasets_pb2.UploadDatasetRequest]:
    data, fmt = draw(archives())
    header = draw(messages(datasets_pb2.UploadHeader, pool))
    if draw(st.integers(0, 3)):  # mostly a plausible header, so the archive gets looked at
        header.name = header.name if header.name.isprintable() and 0 < len(header.name) <= 128 else "fuzz"
        header.layout = datasets_pb2.IMAGE_FOLDERS
        header.format = fmt
        header.sha256 = hashlib.sha256(data).hexdigest()
        header.size_bytes = draw(st.sampled_from([len(data), 0, -1, 2**62]))
    requests = list(upload_requests(data, chunk=draw(st.sampled_from([7, 1000, 256 << 10]))))
    requests[0] = datasets_pb2.UploadDatasetRequest(header=header)
    shape = draw(st.integers(0, 9))
    if shape == 0:
        requests = requests[1:]  # no header
    elif shape == 1:
        requests.insert(len(requests) // 2 + 1, datasets_pb2.UploadDatasetRequest(header=header))
    elif shape == 2:
        requests = requests[:1]  # header only
    elif shape == 3:
        requests.append(datasets_pb2.UploadDatasetRequest())  # an empty oneof
    return requests


def _stub_call(secure: SecureServer, stubs: object, service: str, method: object, request: object) -> grpc.StatusCode:
    stub = {"Datasets": stubs.datasets, "Training": stubs.training, "Models": stubs.models,
            "Inference": stubs.inference}[service]
    fn = getattr(stub, method.name)
    timeout = 5 if method.server_streaming else 30
    try:
        if method.client_streaming:
            result = fn(iter(request), metadata=stubs.metadata, timeout=timeout)
        else:
            result = fn(request, metadata=stubs.metadata, timeout=timeout)
        if method.server_streaming:
            for _ in result:
                pass
    except grpc.RpcError as e:
        code = e.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and method.server_streaming:
            return code  # a WatchJob on a job still running
        assert code not in BAD and code != grpc.StatusCode.DEADLINE_EXCEEDED, \
            f"{method.name}: {code.name}: {e.details()}\nrequest: {str(request)[:2000]}"
        return code
    if method.name in ("CreateFineTuneJob", "FindLearningRate"):  # a real job: do not let it train for long
        stubs.training.CancelJob(training_pb2.CancelJobRequest(id=result.id), metadata=stubs.metadata, timeout=60)
    return grpc.StatusCode.OK


def test_fuzz_every_rpc(secure: SecureServer, alice_model: Trained) -> None:
    alice = secure.stubs("alice")
    carol = secure.stubs("carol")
    victim = carol.call(carol.datasets.RegisterDataset, datasets_pb2.RegisterDatasetRequest(
        name="victim", layout=datasets_pb2.IMAGE_FOLDERS, uri=str(secure.root / "good")))
    root = str(secure.root)
    # Ids and names the fuzzer mixes into string fields: alice's own (reads only), carol's (never reachable),
    # and near misses. Destructive RPCs get only the ones whose loss would not matter (or must not happen).
    safe_pool = [victim.id, "ds-00000000deadbeef", "job-00000000deadbeef", "pets2", "", " ", "ds-", "../..",
                 "resnet18", "IMAGENET1K_V1", f"{root}/good", f"file://{root}/good", f"{root}/../outside", "/etc",
                 "0", "1", "999999999999", "-1", "valid_loss", "accuracy"]
    pool = [*safe_pool, alice_model.dataset.id, alice_model.job.id, "pets"]
    counts: collections.Counter[str] = collections.Counter()
    started = time.monotonic()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                     HealthCheck.filter_too_much])
    @given(data=st.data())
    def one_call(data: st.DataObject) -> None:
        service, method = data.draw(st.sampled_from(RPCS), label="rpc")
        ids = safe_pool if method.name in DESTRUCTIVE else pool
        if method.client_streaming:
            request = data.draw(uploads(ids), label="upload")
        else:
            request = data.draw(messages(message_factory.GetMessageClass(method.input_type), ids), label="request")
            if method.name in ("CreateFineTuneJob", "FindLearningRate") and not data.draw(st.integers(0, 15)):
                # plausible enough to pass the checks now and then: random hyperparameters and resources
                request.task = training_pb2.IMAGE_CLASSIFICATION
                request.arch = "resnet18"
                request.base.random_init = True
                request.dataset_id = data.draw(st.sampled_from([alice_model.dataset.id, victim.id]))
                if method.name == "CreateFineTuneJob":
                    request.model_name = "fuzz"
                # Jobs that pass get queued for real but can never be scheduled (no machine has that many
                # CPUs), so cancelling them is immediate and no random hyperparameters train for minutes.
                request.resources.cpus_per_worker = 100_000
                request.resources.cpu_only = True
                request.resources.workers = 1
            if method.input_type.fields_by_name.get("model") and data.draw(st.booleans(), label="alice's model"):
                request.model.name = "pets"  # reach the serving replicas with the random images/texts
                request.model.version = data.draw(st.sampled_from([0, 1]))
                if "images" in method.input_type.fields_by_name and data.draw(st.booleans(), label="valid images"):
                    del request.images[:]
                    for i, image in enumerate(data.draw(st.lists(st.sampled_from(SAMPLE_IMAGES[:7]), min_size=1,
                                                                 max_size=8))):
                        request.images.add(data=image, name=str(i))
        code = _stub_call(secure, alice, service, method, request)
        counts[f"{method.name} {code.name}"] += 1

    try:
        one_call()
    finally:
        elapsed = time.monotonic() - started
        total = sum(counts.values())
        per_code = collections.Counter(k.split()[1] for k in counts.elements())
        print(f"\nfuzz: {total} cases over {len(RPCS)} RPCs in {elapsed:.0f}s; codes: {dict(per_code)}")
        print("fuzz per RPC/code:", dict(sorted(counts.items())))

    assert secure.proc.proc.poll() is None, "the server died"
    assert secure.proc.healthy()
    assert {name for name in counts} and len({k.split()[0] for k in counts}) == len(RPCS), "an RPC was never tried"
    # carol's dataset survived whatever alice's calls named
    assert carol.call(carol.datasets.GetDataset, datasets_pb2.GetDatasetRequest(id=victim.id)).id == victim.id
    # the model stored before the fuzz answers exactly as before
    c = secure.client("alice")
    assert [r.top for r in c.classify("pets", alice_model.images, top_k=2, version=1)] == alice_model.answers
    # and no fuzz job is left running
    for job in c.list_jobs(states=["QUEUED", "RUNNING"]):
        c.cancel_job(job.id)
