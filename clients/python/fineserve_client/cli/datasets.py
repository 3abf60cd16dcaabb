"""The dataset commands: upload, datasets, delete-dataset."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, TextIO

from fineserve.v1 import datasets_pb2

from ..progress import format_bytes
from .choices import LAYOUTS, layout_choice
from .output import AddCommand, details, emit, print_json, timestamp, write_table

if TYPE_CHECKING:
    from ..client import Client


def _layout(value: int) -> str:
    return datasets_pb2.DatasetLayout.Name(value).lower()


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
        ("size", format_bytes(ds.size_bytes)),
        ("files", ds.file_count),
        ("classes", ", ".join(ds.summary.classes) or "-"),
        ("train items", ds.summary.train_items),
        ("valid items", ds.summary.valid_items),
        ("created", timestamp(ds, "created_at")),
    ]
    return details(pairs)


def _upload(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    ds = c.upload_dataset(a.path, name=a.name, layout=a.layout, progress=not a.json)
    emit(a, out, ds, _dataset_details)
    return 0


def _datasets(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    items = c.list_datasets(layout=a.layout)
    if a.json:
        print_json(items, out)
        return 0
    rows = [(d.id, d.name, _layout(d.layout), d.source, d.file_count, format_bytes(d.size_bytes),
             len(d.summary.classes), timestamp(d, "created_at")) for d in items]
    return write_table(out, ["ID", "NAME", "LAYOUT", "SOURCE", "FILES", "SIZE", "CLASSES", "CREATED"], rows)


def _delete_dataset(c: Client, a: argparse.Namespace, out: TextIO) -> int:
    c.delete_dataset(a.dataset_id)
    emit(a, out, {"deleted": a.dataset_id}, lambda d: f"deleted {d['deleted']}")
    return 0


def add_commands(command: AddCommand) -> None:
    p = command("upload", _upload, "upload a dataset folder or archive")
    p.add_argument("path", metavar="PATH", help="folder, .zip, .tar, .tar.gz or .tgz")
    p.add_argument("--name", help="dataset name (default: the folder or file name)")
    p.add_argument("--layout", default="image_folders", type=layout_choice,
                   help=f"{', '.join(LAYOUTS)} (default: image_folders)")

    p = command("datasets", _datasets, "list datasets")
    p.add_argument("--layout", type=layout_choice, help="only datasets with this layout")

    p = command("delete-dataset", _delete_dataset, "delete a dataset")
    p.add_argument("dataset_id", metavar="DATASET_ID")
