"""The TEXT_CSV dataset layout: a folder with texts.csv (or one .csv) of label,text[,is_valid] rows."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from fineserve.v1 import datasets_pb2
from fineserve_common.names import check_text
from service.dataset_layout import LayoutError

TEXT_FILE = "texts.csv"
_TRUE = {"true", "1", "yes", "valid"}


def summarize(root: Path) -> datasets_pb2.DatasetSummary:
    """Counts training and validation texts (is_valid column; without one the jobs hold out valid_pct) and
    the labels of labelled rows; unlabelled rows serve language models only."""
    found = [root / TEXT_FILE] if (root / TEXT_FILE).is_file() else sorted(root.glob("*.csv"))
    if len(found) != 1:
        raise LayoutError(f"TEXT_CSV needs {TEXT_FILE} or exactly one .csv file in the dataset (found {len(found)})")
    csv.field_size_limit(sys.maxsize)
    train = valid = 0
    labels: set[str] = set()
    try:
        with open(found[0], newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "text" not in reader.fieldnames:
                raise LayoutError(f"{found[0].name} needs a header row with a 'text' column "
                                  "(and optionally 'label' and 'is_valid')")
            for row in reader:
                if not (row.get("text") or "").strip():
                    continue
                if (row.get("is_valid") or "").strip().lower() in _TRUE:
                    valid += 1
                else:
                    train += 1
                    if label := (row.get("label") or "").strip():
                        labels.add(check_text(f"{found[0].name} line {reader.line_num}: label", label))
    except (UnicodeDecodeError, csv.Error) as e:
        raise LayoutError(f"{found[0].name} is not a readable UTF-8 CSV: {e}") from e
    if train == 0:
        raise LayoutError(f"{found[0].name} has no training texts")
    return datasets_pb2.DatasetSummary(classes=sorted(labels), train_items=train, valid_items=valid)
