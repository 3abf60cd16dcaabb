"""Test material for the security suite: certificates, synthetic images, hostile archives, raw gRPC stubs."""

from __future__ import annotations

import datetime
import hashlib
import http.server
import io
import ipaddress
import ssl
import struct
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

from fineserve.v1 import (
    datasets_pb2,
    datasets_pb2_grpc,
    inference_pb2_grpc,
    models_pb2_grpc,
    training_pb2_grpc,
)

# -- certificates ---------------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey,
          *, ca: bool = False, server: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                          content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, encipher_only=False,
                                          decipher_only=False), critical=True)
    elif server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, a server certificate for localhost/127.0.0.1, a client certificate from the same
    CA, and a client certificate from an unrelated CA (which the server must refuse)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path

    def channel_credentials(self, client: bool = True) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=self.client_key.read_bytes() if client else None,
            certificate_chain=self.client_cert.read_bytes() if client else None)


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("fineserve test CA", ca_key, "fineserve test CA", ca_key, ca=True)
    files["ca.pem"] = ca.public_bytes(serialization.Encoding.PEM)
    for name, server in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(f"fineserve test {name}", key, "fineserve test CA", ca_key, server=server)
        files[f"{name}.pem"] = cert.public_bytes(serialization.Encoding.PEM)
        files[f"{name}-key.pem"] = _pem_key(key)
    rogue_ca_key = ec.generate_private_key(ec.SECP256R1())
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = _cert("rogue client", rogue_key, "rogue CA", rogue_ca_key)
    files["rogue.pem"] = rogue.public_bytes(serialization.Encoding.PEM)
    files["rogue-key.pem"] = _pem_key(rogue_key)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return Pki(ca=folder / "ca.pem", server_cert=folder / "server.pem", server_key=folder / "server-key.pem",
               client_cert=folder / "client.pem", client_key=folder / "client-key.pem",
               rogue_cert=folder / "rogue.pem", rogue_key=folder / "rogue-key.pem")



@contextmanager
def http_server(handler: Callable[..., Any], pki: Pki | None = None) -> Iterator[http.server.ThreadingHTTPServer]:
    """A threaded http server on a free loopback port, https with pki's server certificate when given; stopped on
    exit. Its URL: url_of(server)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if pki is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.server_cert, pki.server_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url_of(server: http.server.ThreadingHTTPServer) -> str:
    scheme = "https" if isinstance(server.socket, ssl.SSLSocket) else "http"
    return f"{scheme}://127.0.0.1:{server.server_address[1]}"


# -- images -----------------------------------------------------------------------------------------------


def png(width: int, height: int, color: tuple[int, int, int] = (0, 0, 0), noise_seed: int | None = None) -> bytes:
    image = Image.new("RGB", (width, height), color)
    if noise_seed is not None:
        import random

        rnd = random.Random(noise_seed)
        image.putdata([tuple(min(255, max(0, c + rnd.randint(-40, 40))) for c in color)
                       for _ in range(width * height)])
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels in a few dozen bytes: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def image_folders(root: Path, classes: dict[str, tuple[int, int, int]], per_class: int = 12,
                  size: int = 20) -> Path:
    """train/<class>/*.png and valid/<class>/*.png of noisy solid colours: learnable in one epoch."""
    for split, n in (("train", per_class), ("valid", max(2, per_class // 3))):
        for cls, color in classes.items():
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                seed = zlib.crc32(f"{split}/{cls}/{i}".encode())
                (d / f"{i}.png").write_bytes(png(size, size, color, noise_seed=seed))
    return root


# -- archives -----------------------------------------------------------------------------------------------


def zip_bytes(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def zip_folder(folder: Path) -> bytes:
    return zip_bytes({f.relative_to(folder).as_posix(): f.read_bytes()
                      for f in sorted(folder.rglob("*")) if f.is_file()}, zipfile.ZIP_STORED)


def zip_with_symlink(name: str, target: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("train/a/1.png", png(4, 4))
        info = zipfile.ZipInfo(name)
        info.external_attr = 0o120777 << 16
        zf.writestr(info, target)
    return buf.getvalue()


def tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes]], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for info, data in entries:
            if info.isreg():
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue()


def tar_member(name: str, link_to: str | None = None, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    if link_to is not None:
        info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
        info.linkname = link_to
    return info


def tar_gz_bomb(expanded: int) -> bytes:
    info = tarfile.TarInfo("train/a/zeros.png")
    return tar_bytes([(info, b"\0" * expanded)], mode="w:gz")


def upload_requests(data: bytes, name: str = "ds", sha256: str | None = None, fmt: int = datasets_pb2.ZIP,
                    layout: int = datasets_pb2.IMAGE_FOLDERS, size: int | None = None,
                    chunk: int = 256 << 10) -> Iterator[datasets_pb2.UploadDatasetRequest]:
    yield datasets_pb2.UploadDatasetRequest(header=datasets_pb2.UploadHeader(
        name=name, layout=layout, format=fmt, sha256=sha256 or hashlib.sha256(data).hexdigest(),
        size_bytes=len(data) if size is None else size))
    for i in range(0, len(data), chunk):
        yield datasets_pb2.UploadDatasetRequest(chunk=data[i:i + chunk])


# -- raw gRPC access ----------------------------------------------------------------------------------------


class Stubs:
    """Raw stubs on one channel, with an API key sent on every call (as another service would call us)."""

    def __init__(self, target: str, credentials: grpc.ChannelCredentials | None, key: str | None) -> None:
        opts = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        self.channel = (grpc.secure_channel(target, credentials, options=opts) if credentials
                        else grpc.insecure_channel(target, options=opts))
        self.metadata = (("authorization", f"Bearer {key}"),) if key else ()
        self.datasets = datasets_pb2_grpc.DatasetsStub(self.channel)
        self.training = training_pb2_grpc.TrainingStub(self.channel)
        self.models = models_pb2_grpc.ModelsStub(self.channel)
        self.inference = inference_pb2_grpc.InferenceStub(self.channel)

    def call(self, method: grpc.UnaryUnaryMultiCallable, request: object, timeout: float = 60) -> object:
        return method(request, metadata=self.metadata, timeout=timeout)

    def code(self, method: grpc.UnaryUnaryMultiCallable, request: object,
             timeout: float = 60) -> tuple[grpc.StatusCode, str]:
        """(status code, details) of a unary or client-streaming call; streams are drained."""
        try:
            result = method(request, metadata=self.metadata, timeout=timeout)
            if hasattr(result, "__next__"):
                for _ in result:
                    pass
        except grpc.RpcError as e:
            return e.code(), e.details() or ""
        return grpc.StatusCode.OK, ""

    def close(self) -> None:
        self.channel.close()
