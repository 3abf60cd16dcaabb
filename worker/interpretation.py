"""What the serving replicas do for ScoreLabels and Explain, off the event loop: engine calls turned into
typed answers (fineserve_common.answers), or a Refused for input the model cannot take."""

from __future__ import annotations

from typing import Any

from fineserve_common.answers import Heatmap, LabelScores, Refused
from fineserve_common.errors import InvalidArgument


def score_labels(model: Any, images: list[bytes], threshold: float | None) -> list[LabelScores] | Refused:
    """Every label's score and the labels over threshold (None: the model's tuned thresholds), per image."""
    from worker.engine import InvalidImage, MultiLabelClassifier

    if not isinstance(model, MultiLabelClassifier):
        return Refused.of(InvalidArgument(f"ScoreLabels needs a multi-label model; this one is {model.TASK}"))
    try:
        return model.score_labels(images, threshold)
    except InvalidImage as e:
        return Refused.of(InvalidArgument(str(e)))  # "image N: why", as InvalidImage words it


def explain(model: Any, images: list[bytes], target: str) -> list[Heatmap] | Refused:
    """Grad-CAM map (row-major floats and its grid size) and overlay PNG per image, in one batched pass."""
    from worker.engine import InvalidImage, explain

    try:
        explanations = explain(model, images, target)
    except InvalidImage as e:
        return Refused.of(InvalidArgument(str(e)))  # "image N: why", as InvalidImage words it
    except ValueError as e:
        return Refused.of(InvalidArgument(str(e)))
    return [Heatmap(target=x.target, height=x.grid.shape[0], width=x.grid.shape[1], grid=x.grid.flatten().tolist(),
                    overlay_png=x.overlay_png) for x in explanations]
