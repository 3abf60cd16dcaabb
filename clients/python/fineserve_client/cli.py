"""The fineserve command: upload data sets, run fine-tune jobs, inspect models, classify, score and segment
images, explain predictions with Grad-CAM heatmaps, recommend items and predict table rows."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import timezone
from typing import Any, TextIO

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from fineserve.v1 import datasets_pb2, models_pb2, training_pb2

from . import __version__
from .client import TEXT_TASKS, Classification, Client, parse_model_ref
from .errors import FineserveError, JobFailed
from .interpretation import overlay_path
from .jobs import check_job, is_terminal
from .progress import ProgressBar

DEFAULT_TARGET = "localhost:50051"
_USAGE_CODES = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)


# -- formatting ---------------------------------------------------------------------------------------


def _to_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _print_json(value: Any, out: TextIO) -> None:
    if isinstance(value, Message):
        value = _to_dict(value)
    elif isinstance(value, list):
        value = [_to_dict(v) if isinstance(v, Message) else v for v in value]
    out.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _details(pairs: Sequence[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in pairs)


def _time(message: Message, name: str) -> str:
    if not message.HasField(name):
        return "-"
    utc = timezone.utc  # noqa: UP017 (datetime.UTC needs Python 3.11; the SDK supports 3.10)
    return getattr(message, name).ToDatetime(tzinfo=utc).strftime("%Y-%m-%d %H:%M:%S")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _metrics(metrics: Any) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in sorted(dict(metrics).items())) or "-"


def _layout(value: int) -> str:
    return datasets_pb2.DatasetLayout.Name(value).lower()


def _state(value: int) -> str:
    return training_pb2.JobState.Name(value)


def _task(value: int) -> str:
    return training_pb2.Task.Name(value).lower()


def _base(base: training_pb2.BaseModel) -> str:
    kind = base.WhichOneof("source")
    if kind == "torchvision":
        return f"torchvision:{base.torchvision.weights or 'DEFAULT'}"
    if kind == "weights_file":
        return f"file:{base.weights_file}"
    if kind == "stored_model":
        ref = base.stored_model
        return f"model:{ref.name}" + (f"/{ref.version}" if ref.version else "")
    if kind == "random_init":
        return "none"
    return "-"


def _progress(job: training_pb2.Job) -> str:
    if job.state == training_pb2.QUEUED and job.queue_position:
        return f"queued, #{job.queue_position} in line"
    p = job.progress
    if not job.HasField("progress") or not p.epochs:
        return "-"
    text = f"{p.phase + ' ' if p.phase else ''}epoch {p.epoch}/{p.epochs}"
    return text + (f" batch {p.batch}/{p.batches}" if p.batches else "")


def _dataset_details(ds: datasets_pb2.Dataset) -> str:
    pairs: list[tuple[str, Any]] = [
        ("id", ds.id),
        ("name", ds.name),
        ("layout", _layout(ds.layout)),
        ("source", ds.source),
    ]
    if ds.uri:
        pairs.append(("uri", ds.uri))
    if ds.sha256:
        pairs.append(("sha256", ds.sha256))
    pairs += [
        ("size", _size(ds.size_bytes)),
        ("files", ds.file_count),
        ("classes", ", ".join(ds.summary.classes) or "-"),
        ("train items", ds.summary.train_items),
        ("valid items", ds.summary.valid_items),
        ("created", _time(ds, "created_at")),
    ]
    return _details(pairs)


def _job_details(job: training_pb2.Job) -> str:
    r = job.request
    pairs: list[tuple[str, Any]] = [
        ("id", job.id),
        ("state", _state(job.state)),
        ("kind", job.kind or "-"),
        ("task", _task(job.task)),
        ("model name", r.model_name or "-"),
        ("arch", r.arch or "-"),
        ("base", _base(r.base)),
        ("dataset", r.dataset_id or "-"),
        ("progress", _progress(job)),
        ("created", _time(job, "created_at")),
        ("started", _time(job, "started_at")),
        ("finished", _time(job, "finished_at")),
        ("attempts", job.attempts),
    ]
    if r.HasField("hyperparameters"):
        hyper = _to_dict(r.hyperparameters)
        pairs.append(("hyperparameters", ", ".join(f"{k}={v}" for k, v in hyper.items()) or "defaults"))
    if job.error:
        pairs.append(("error", job.error))
    if job.result.HasField("model"):
        pairs.append(("model", f"{job.result.model.name}/{job.result.model.version}"))
    if job.result.metrics:
        pairs.append(("metrics", _metrics(job.result.metrics)))
    return _details(pairs)


def _model_details(model: models_pb2.Model) -> str:
    pairs: list[tuple[str, Any]] = [
        ("model", f"{model.ref.name}/{model.ref.version}"),
        ("task", _task(model.task)),
        ("arch", model.arch or "-"),
        ("base", model.base or "-"),
        ("classes", f"{len(model.classes)}: {', '.join(model.classes)}" if model.classes else "-"),
        ("metrics", _metrics(model.metrics)),
        ("job", model.job_id or "-"),
        ("dataset", model.dataset_id or "-"),
        ("size", _size(model.size_bytes)),
        ("created", _time(model, "created_at")),
        ("serving", f"loaded on {model.loaded_replicas} replica(s)" if model.loaded_replicas
         else "not loaded (the next call loads it)"),
    ]
    return _details(pairs)


def _emit(a: argparse.Namespace, out: TextIO, value: Any, human: Callable[[Any], str]) -> None:
    if a.json:
        _print_json(value, out)
    else:
        out.write(human(value) + "\n")


# -- commands -----------------------------------------------------------------------------------------


def _cmd_upload(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    ds = c.upload_dataset(a.path, name=a.name, layout=a.layout, progress=not a.json)
    _emit(a, out, ds, _dataset_details)
    return 0


def _cmd_datasets(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    items = c.list_datasets(layout=a.layout)
    if a.json:
        _print_json(items, out)
        return 0
    rows = [
        (
            d.id,
            d.name,
            _layout(d.layout),
            d.source,
            d.file_count,
            _size(d.size_bytes),
            len(d.summary.classes),
            _time(d, "created_at"),
        )
        for d in items
    ]
    out.write(_table(["ID", "NAME", "LAYOUT", "SOURCE", "FILES", "SIZE", "CLASSES", "CREATED"], rows) + "\n")
    return 0


def _finish_job(job: training_pb2.Job, a: argparse.Namespace, out: TextIO) -> int:
    _emit(a, out, job, _job_details)
    check_job(job)  # raises JobFailed for FAILED / CANCELLED
    return 0


def _key_values(pairs: Sequence[str] | None, what: str) -> dict[str, str]:
    """KEY=VALUE arguments as a dict (a value may itself hold "=")."""
    values = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} must be KEY=VALUE, got {pair!r}")
        values[key] = value
    return values


def _cmd_train(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    options = _key_values(a.option, "--option")
    task = training_pb2.Task.Value(a.task.upper())
    job = c.create_fine_tune_job(
        a.dataset,
        a.model,
        task=task,
        collab=options if task == training_pb2.COLLABORATIVE_FILTERING else None,
        tabular=options if task == training_pb2.TABULAR else None,
        text=options if task in TEXT_TASKS else None,
        arch=a.arch,
        base=a.base,
        epochs=a.epochs,
        freeze_epochs=a.freeze_epochs,
        lr=a.lr,
        batch_size=a.batch_size,
        image_size=a.image_size,
        precision=a.precision,
        request_id=a.request_id,
        auto_lr=a.auto_lr or None,
        fbeta_beta=a.fbeta_beta,
        void_code=a.void_code,
        resources={k: v for k, v in (("workers", a.workers), ("cpus_per_worker", a.cpus_per_worker),
                                     ("gpus_per_worker", a.gpus_per_worker)) if v is not None} or None,
    )
    if a.no_wait:
        if a.json:
            _print_json(job, out)
        else:
            out.write(f"{job.id} {_state(job.state)}\n")
        return 0
    if not a.json:
        sys.stderr.write(f"job {job.id} {_state(job.state)}\n")
    return _finish_job(c.wait(job.id, progress=True), a, out)


def _cmd_lr_find(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    task = training_pb2.Task.Value(a.task.upper())
    options = _key_values(a.option, "--option")
    job = c.find_learning_rate(a.dataset, arch=a.arch, task=task, base=a.base, num_batches=a.num_batches,
                               text=options if task in TEXT_TASKS else None, batch_size=a.batch_size,
                               image_size=a.image_size)
    job = c.wait(job.id, progress=not a.json)
    check_job(job)
    if a.json:
        _print_json(job.result.lr_finder, out)
    else:
        for name, lr in sorted(job.result.lr_finder.suggestions.items()):
            out.write(f"{name:<16} {lr:.3e}\n")
    if a.plot:
        from .plots import plot_lr_finder

        plot_lr_finder(job, a.plot)
        sys.stderr.write(f"wrote {a.plot}\n")
    return 0


def _cmd_plot(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    from .plots import plot_training

    plot_training(c.watch_job(a.job_id), a.out)
    out.write(f"wrote {a.out}\n")
    return 0


def _cmd_watch(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    if a.json:
        for event in c.watch_job(a.job_id, a.from_sequence):
            out.write(json.dumps(_to_dict(event)) + "\n")
            out.flush()
        job = c.get_job(a.job_id)
        if not is_terminal(job):
            return 0
        check_job(job)
        return 0
    return _finish_job(c.wait(a.job_id, progress=ProgressBar(stream=out)), a, out)


def _cmd_jobs(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    items = c.list_jobs(states=a.state or None, model_name=a.model)
    if a.json:
        _print_json(items, out)
        return 0
    rows = [
        (
            j.id,
            _state(j.state),
            j.request.model_name or "-",
            j.request.arch or "-",
            j.request.dataset_id or "-",
            _progress(j),
            _time(j, "created_at"),
            (j.error[:60] + "...") if len(j.error) > 63 else j.error or "",
        )
        for j in items
    ]
    out.write(
        _table(["ID", "STATE", "MODEL", "ARCH", "DATASET", "PROGRESS", "CREATED", "ERROR"], rows) + "\n"
    )
    return 0


def _cmd_job(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    job = c.get_job(a.job_id)
    _emit(a, out, job, _job_details)
    return 0


def _cmd_cancel(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    job = c.cancel_job(a.job_id)
    _emit(a, out, job, lambda j: f"{j.id} {_state(j.state)}")
    return 0


def _cmd_models(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    items = c.list_models(name=a.name)
    if a.json:
        _print_json(items, out)
        return 0
    rows = [
        (
            m.ref.name,
            m.ref.version,
            _task(m.task),
            m.arch or "-",
            len(m.classes),
            _metrics(m.metrics),
            m.base or "-",
            _time(m, "created_at"),
        )
        for m in items
    ]
    out.write(
        _table(["NAME", "VERSION", "TASK", "ARCH", "CLASSES", "METRICS", "BASE", "CREATED"], rows) + "\n"
    )
    return 0


def _cmd_model(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    model = c.get_model(*parse_model_ref(a.model))
    _emit(a, out, model, _model_details)
    return 0


def _cmd_delete_model(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    deleted = c.delete_model(*parse_model_ref(a.model))
    if a.json:
        _print_json({"deleted": [_to_dict(r) for r in deleted]}, out)
    else:
        out.write("deleted " + (", ".join(f"{r.name}/{r.version}" for r in deleted) or "nothing") + "\n")
    return 0


def _cmd_delete_dataset(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    c.delete_dataset(a.dataset_id)
    _emit(a, out, {"deleted": a.dataset_id}, lambda d: f"deleted {d['deleted']}")
    return 0


def _cmd_predict_text(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    name, version = parse_model_ref(a.model)
    texts = list(a.texts) or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    return _print_classifications(c.predict_text(name, texts, top_k=a.top_k, version=version), a, out)


def _cmd_classify(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    name, version = parse_model_ref(a.model)
    return _print_classifications(c.classify(name, a.files, top_k=a.top_k, version=version), a, out)


def _print_classifications(results: list[Classification], a: argparse.Namespace, out: TextIO) -> int:
    if a.json:
        _print_json(
            [
                {
                    "file": r.name,
                    "model": r.model,
                    "top": [{"label": lb, "probability": p} for lb, p in r.top],
                }
                for r in results
            ],
            out,
        )
        return 0
    rows = [
        (
            r.name,
            r.label or "-",
            f"{r.probability:.4f}" if r.probability is not None else "-",
            ", ".join(f"{lb} {p:.4f}" for lb, p in r.top[1:]) or "-",
        )
        for r in results
    ]
    out.write(_table(["FILE", "LABEL", "PROBABILITY", "OTHERS"], rows) + "\n")
    return 0


def _cmd_score_labels(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    name, version = parse_model_ref(a.model)
    results = c.score_labels(name, a.files, threshold=a.threshold, version=version)
    if a.json:
        _print_json([{"file": r.name, "model": r.model, "scores": r.scores, "predicted": r.predicted}
                     for r in results], out)
        return 0
    rows = [(r.name, ", ".join(r.predicted) or "-", ", ".join(f"{lb} {p:.3f}" for lb, p in r.scores.items()))
            for r in results]
    out.write(_table(["FILE", "PREDICTED", "SCORES"], rows) + "\n")
    return 0


def _cmd_explain(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    """Writes each input's overlay next to it (photo.jpg -> photo.gradcam.png)."""
    name, version = parse_model_ref(a.model)
    results = c.explain(name, a.files, target=a.class_name or "", version=version, save_overlays=True)
    rows = [(r.name, r.target, str(overlay_path(r.name))) for r in results]
    if a.json:
        _print_json([{"file": f, "target": t, "overlay": o, "grid": r.grid}
                     for (f, t, o), r in zip(rows, results, strict=True)], out)
        return 0
    out.write(_table(["FILE", "TARGET", "OVERLAY"], rows) + "\n")
    return 0


def _cmd_segment(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    name, version = parse_model_ref(a.model)
    results = c.segment(name, a.files, version=version, save_to=a.out)
    if a.json:
        _print_json([{"file": r.name, "model": r.model, "width": r.width, "height": r.height,
                      "shares": r.shares} for r in results], out)
        return 0
    rows = [(r.name, f"{r.width}x{r.height}", ", ".join(f"{lb} {s:.1%}" for lb, s in r.top(a.top)))
            for r in results]
    out.write(_table(["FILE", "SIZE", "LARGEST CLASSES"], rows) + "\n")
    out.write(f"masks and overlays in {a.out}\n")
    return 0


def _cmd_recommend(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    name, version = parse_model_ref(a.model)
    pairs = [tuple(p.split(":", 1)) for p in a.pair or ()]
    if any(len(p) != 2 for p in pairs):
        raise ValueError("--pair must be USER:ITEM")
    users = a.users.split(",") if a.users else None
    rec = c.recommend(name, a.user, users=users, similar_to=a.similar_to, pairs=pairs or None,
                      top_by_bias=a.top_by_bias, k=a.k, popularity_fallback=a.fallback, version=version)
    if a.json:
        _print_json(dataclasses.asdict(rec), out)
        return 0
    if pairs:
        out.write(_table(["USER", "ITEM", "RATING"], [(u, i, f"{r:.3f}") for (u, i), r in zip(pairs, rec.ratings,
                                                                                             strict=True)]) + "\n")
    else:
        per_user = rec.users.items() if users else [("", rec)]
        rows = [(user, n, item.item_id, f"{item.score:.4f}", item.title or "-")
                for user, r in per_user for n, item in enumerate(r.items, 1)]
        out.write(_table(["USER", "RANK", "ITEM", "SCORE", "TITLE"], rows) + "\n")
    if rec.fallback:
        out.write("(unknown id: the popularity fallback answered)\n")
    return 0


def _cmd_predict_tabular(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    name, version = parse_model_ref(a.model)
    rows: list[dict[str, str]] = [_key_values(row.split(","), "--row") for row in a.row or ()]
    if a.csv:
        with open(a.csv, newline="", encoding="utf-8") as f:
            rows += [dict(r) for r in csv.DictReader(f)]
    if not rows:
        raise ValueError("give rows with --row KEY=VALUE,KEY=VALUE or --csv FILE")
    results = c.predict_tabular(name, rows, top_k=a.top_k, version=version)
    if a.json:
        _print_json([dataclasses.asdict(r) for r in results], out)
        return 0
    table = [(n, r.label if r.top else f"{r.value:.4f}", ", ".join(f"{lb} {p:.4f}" for lb, p in r.top) or "-")
             for n, r in enumerate(results)]
    out.write(_table(["ROW", "PREDICTION", "PROBABILITIES"], table) + "\n")
    return 0


# -- argument parsing ---------------------------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    # Global options are accepted before or after the sub-command; SUPPRESS keeps a sub-command's parser
    # from overwriting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--target",
        default=argparse.SUPPRESS,
        help=f"server address (default: $FINESERVE_TARGET or {DEFAULT_TARGET})",
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    common.add_argument(
        "--timeout", type=float, default=argparse.SUPPRESS, help="deadline of unary calls in seconds (60)"
    )
    common.add_argument(
        "--api-key", default=argparse.SUPPRESS, metavar="KEY",
        help="API key, sent as 'authorization: Bearer KEY' (default: $FINESERVE_API_KEY)",
    )
    common.add_argument(
        "--tls", action="store_true", default=argparse.SUPPRESS,
        help="connect with TLS, trusting the system's CA roots (implied by --ca-file/--client-cert)",
    )
    common.add_argument(
        "--ca-file", default=argparse.SUPPRESS, metavar="PEM",
        help="CA bundle that signed the server's certificate; implies TLS (default: $FINESERVE_CA_FILE)",
    )
    common.add_argument(
        "--client-cert", default=argparse.SUPPRESS, metavar="PEM",
        help="client certificate chain for mutual TLS (default: $FINESERVE_CLIENT_CERT)",
    )
    common.add_argument(
        "--client-key", default=argparse.SUPPRESS, metavar="PEM",
        help="client private key for mutual TLS (default: $FINESERVE_CLIENT_KEY)",
    )
    common.add_argument(
        "--server-name", default=argparse.SUPPRESS, metavar="HOST",
        help="host name to check the server's certificate against (default: the target's host)",
    )

    parser = argparse.ArgumentParser(prog="fineserve", description=__doc__, parents=[common])
    parser.add_argument("--version", action="version", version=f"fineserve-client {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, func: Callable[..., int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = command("upload", _cmd_upload, "upload a dataset folder or archive")
    p.add_argument("path", metavar="PATH", help="folder, .zip, .tar, .tar.gz or .tgz")
    p.add_argument("--name", help="dataset name (default: the folder or file name)")
    p.add_argument("--layout", default="image_folders", help="dataset layout (default: image_folders)")

    p = command("datasets", _cmd_datasets, "list datasets")
    p.add_argument("--layout", help="only datasets with this layout")

    p = command("delete-dataset", _cmd_delete_dataset, "delete a dataset")
    p.add_argument("dataset_id", metavar="DATASET_ID")

    p = command("train", _cmd_train, "start a fine-tune job (and wait for it, by default)")
    p.add_argument("--dataset", required=True, metavar="ID", help="dataset id")
    p.add_argument("--model", required=True, metavar="NAME", help="name of the model to produce")
    p.add_argument("--task", default="image_classification",
                   help="image_classification (default), multi_label_classification, segmentation, "
                   "collaborative_filtering, tabular, language_model or text_classification")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="a CollabOptions / TabularOptions / TextOptions field, lists comma-separated (repeatable), "
                        "e.g. --option target=salary --option categorical=workclass,education")
    p.add_argument("--arch", default="resnet18",
                   help="resnet18, resnet34 or resnet50 (default: resnet18); dot or neural for collaborative_filtering")
    p.add_argument("--fbeta-beta", type=float, help="multi-label: beta of F-beta and of the threshold tuning (2)")
    p.add_argument("--void-code", help="segmentation: the class whose pixels are ignored (default: Void if any)")
    p.add_argument(
        "--base",
        help="imagenet, torchvision:WEIGHTS, file:PATH, model:NAME[/VERSION] or none (default: imagenet for image "
        "tasks; text tasks must choose: none or model:LM_NAME)",
    )
    p.add_argument("--epochs", type=int, help="epochs after unfreezing")
    p.add_argument("--freeze-epochs", type=int, help="epochs training only the head")
    p.add_argument("--lr", type=float, help="top learning rate")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--image-size", type=int)
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--request-id", help="idempotency key")
    p.add_argument("--auto-lr", action="store_true", help="let the service pick the LR (range test first)")
    p.add_argument("--workers", type=int,
                   help="data-parallel workers (Ray Train DDP); --batch-size is then the global batch")
    p.add_argument("--cpus-per-worker", type=float)
    p.add_argument("--gpus-per-worker", type=float)
    p.add_argument("--no-wait", action="store_true", help="print the job id and return at once")

    p = command("lr-find", _cmd_lr_find, "run the LR range test and print (and plot) the suggested rates")
    p.add_argument("--dataset", required=True, metavar="ID", help="dataset id")
    p.add_argument("--task", default="image_classification", help="as for train")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="language_model, text_classification: a TextOptions field (repeatable), e.g. --option bptt=30")
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--base", help="as for train (default: imagenet for image tasks); text tasks: none or model:LM_NAME")
    p.add_argument("--num-batches", type=int, default=100)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--image-size", type=int)
    p.add_argument("--plot", metavar="PNG", help="save the loss/lr curve with the suggestions marked")

    p = command("plot", _cmd_plot, "plot a job's LR, momentum and loss curves to a PNG")
    p.add_argument("job_id", metavar="JOB_ID")
    p.add_argument("--out", default="training.png", metavar="PNG")

    p = command("watch", _cmd_watch, "follow a job until it finishes")
    p.add_argument("job_id", metavar="JOB_ID")
    p.add_argument("--from-sequence", type=int, default=0, help=argparse.SUPPRESS)

    p = command("jobs", _cmd_jobs, "list jobs")
    p.add_argument("--state", action="append", help="only jobs in this state (repeatable)")
    p.add_argument("--model", help="only jobs producing this model name")

    p = command("job", _cmd_job, "show a job")
    p.add_argument("job_id", metavar="JOB_ID")

    p = command("cancel", _cmd_cancel, "cancel a job")
    p.add_argument("job_id", metavar="JOB_ID")

    p = command("models", _cmd_models, "list models")
    p.add_argument("--name", help="only versions of this name")

    p = command("model", _cmd_model, "show a model (latest version without /VERSION)")
    p.add_argument("model", metavar="NAME[/VERSION]")

    p = command("delete-model", _cmd_delete_model, "delete a model version (every version without /VERSION)")
    p.add_argument("model", metavar="NAME[/VERSION]")

    p = command("classify", _cmd_classify, "classify image files")
    p.add_argument("model", metavar="MODEL[/VERSION]")
    p.add_argument("files", metavar="FILE", nargs="+")
    p.add_argument("--top-k", type=int, default=5, help="classes per image (default: 5)")

    p = command("score-labels", _cmd_score_labels, "score every label of a multi-label model for image files")
    p.add_argument("model", metavar="MODEL[/VERSION]")
    p.add_argument("files", metavar="FILE", nargs="+")
    p.add_argument("--threshold", type=float, help="one threshold for every label (default: the tuned ones)")

    p = command("explain", _cmd_explain, "Grad-CAM heatmaps; writes FILE's overlay next to it as *.gradcam.png")
    p.add_argument("model", metavar="MODEL[/VERSION]")
    p.add_argument("files", metavar="FILE", nargs="+")
    p.add_argument("--class", dest="class_name", metavar="NAME",
                   help="class or label to explain (default: each image's top prediction)")

    p = command("segment", _cmd_segment, "segment image files: masks and colour overlays to --out")
    p.add_argument("model", metavar="MODEL[/VERSION]")
    p.add_argument("files", metavar="FILE", nargs="+")
    p.add_argument("--out", default="segments", help="folder for NAME.mask.png and NAME.overlay.png (default: "
                   "segments)")
    p.add_argument("--top", type=int, default=3, help="classes listed per image (default: 3)")

    p = command("recommend", _cmd_recommend, "recommendations from a collaborative-filtering model")
    p.add_argument("model", metavar="MODEL[/VERSION]")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--user", help="top-k items this user has not rated")
    query.add_argument("--users", metavar="U1,U2,...", help="top-k items for each of these users (one call)")
    query.add_argument("--similar-to", metavar="ITEM", help="the k items most similar to this one")
    query.add_argument("--pair", action="append", metavar="USER:ITEM", help="predicted rating (repeatable)")
    query.add_argument("--top-by-bias", action="store_true", help="the k items with the highest learnt bias")
    p.add_argument("-k", type=int, default=10, help="items to return (default: 10)")
    p.add_argument("--fallback", action="store_true", help="popular items for unknown ids instead of NOT_FOUND")

    p = command("predict-tabular", _cmd_predict_tabular, "predict table rows with a tabular model")
    p.add_argument("model", metavar="MODEL[/VERSION]")
    p.add_argument("--row", action="append", metavar="KEY=VALUE,...", help="one row (repeatable)")
    p.add_argument("--csv", metavar="FILE", help="rows from a CSV file with a header")
    p.add_argument("--top-k", type=int, default=5, help="classes per row (default: 5)")

    p = command("predict-text", _cmd_predict_text, "classify texts with a ULMFiT text classifier")
    p.add_argument("model", metavar="MODEL[/VERSION]")
    p.add_argument("texts", metavar="TEXT", nargs="*", help="texts to classify (none: one per line on stdin)")
    p.add_argument("--top-k", type=int, default=0, help="labels per text (default: all)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for INVALID_ARGUMENT / NOT_FOUND and bad input, 1 for other
    errors)."""
    args = _build_parser().parse_args(argv)
    args.json = getattr(args, "json", False)
    target = getattr(args, "target", None) or os.environ.get("FINESERVE_TARGET") or DEFAULT_TARGET
    timeout = getattr(args, "timeout", 60.0)
    out = sys.stdout

    def option(name: str, env: str) -> Any:
        return getattr(args, name, None) or os.environ.get(env) or None

    security = {
        "api_key": option("api_key", "FINESERVE_API_KEY"),
        "tls": bool(getattr(args, "tls", False)),
        "ca_file": option("ca_file", "FINESERVE_CA_FILE"),
        "client_cert": option("client_cert", "FINESERVE_CLIENT_CERT"),
        "client_key": option("client_key", "FINESERVE_CLIENT_KEY"),
        "server_name": getattr(args, "server_name", None),
    }
    try:
        with Client(target, timeout=timeout, **security) as client:
            return args.func(client, args, out)
    except FineserveError as e:
        sys.stderr.write(f"error: {e.code.name}: {e.message}\n")
        return 2 if e.code in _USAGE_CODES else 1
    except JobFailed as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    except (ValueError, TypeError, FileNotFoundError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    except OSError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
