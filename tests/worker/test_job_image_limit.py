"""A job decodes its data set under the server's max_image_pixels (sent with the job's spec), as the serving
replicas do: an image past it is skipped from its header, never decoded."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine.synthetic_images import TINY, stripes, write_class
from PIL import Image

from fineserve_common.configs import FineTuneConfig
from fineserve_common.events import Succeeded
from fineserve_common.spec import FINE_TUNE, JobSpec
from worker.jobs import run_fine_tune


def _skipped(dataset: Path, out: Path, limit: int | None) -> int:
    spec = JobSpec(FINE_TUNE, "image_classification", FineTuneConfig(**TINY, device="cpu"), str(dataset), str(out),
                   max_image_pixels=limit)
    (done,) = [ev for ev in run_fine_tune(spec) if isinstance(ev, Succeeded)]
    assert done.result.card is not None
    return done.result.card["dataset"]["skipped_files"]


def test_an_image_over_the_servers_limit_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    for split, count in (("train", 6), ("valid", 2)):
        write_class(tmp_path / "data" / split / "horizontal", False, count, 0)
        write_class(tmp_path / "data" / split / "vertical", True, count, 100)
    stripes(False, 7, size=40).save(tmp_path / "data" / "train" / "horizontal" / "large.png")  # 1,600 pixels
    assert _skipped(tmp_path / "data", tmp_path / "no-limit", None) == 0
    assert _skipped(tmp_path / "data", tmp_path / "limited", 1_000) == 1  # the 24x24 images pass, 40x40 does not


def test_a_strip_in_the_training_data_is_skipped_before_decoding(tmp_path: Path) -> None:
    """A 1x300000 PNG passes any pixel limit, but resized for training it would become 32 x 9.6 million pixels:
    the job skips it from its header (counted in the card and the data set's log line), as serving refuses it."""
    for split, count in (("train", 6), ("valid", 2)):
        write_class(tmp_path / "data" / split / "horizontal", False, count, 0)
        write_class(tmp_path / "data" / split / "vertical", True, count, 100)
    Image.new("L", (1, 300_000)).save(tmp_path / "data" / "train" / "vertical" / "strip.png")
    assert _skipped(tmp_path / "data", tmp_path / "out", None) == 1
