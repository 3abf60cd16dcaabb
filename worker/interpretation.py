"""What the serving replicas do for ScoreLabels and Explain, off the event loop: engine calls turned into
plain answers ({"results": [...]}) or {"error": {...}} for input the model cannot take."""

from __future__ import annotations

from typing import Any

from worker.answers import invalid


def score_labels(model: Any, images: list[bytes], threshold: float | None) -> dict[str, Any]:
    """Every label's score and the labels over threshold (None: the model's tuned thresholds), per image."""
    from worker.engine import InvalidImage, MultiLabelClassifier

    if not isinstance(model, MultiLabelClassifier):
        return invalid(f"ScoreLabels needs a multi-label model; this one is {model.TASK}")
    try:
        results = model.score_labels(images, threshold)
    except InvalidImage as e:
        return invalid(f"image {e.index}: {e.reason}")
    return {"results": [{"scores": r.scores, "predicted": r.predicted} for r in results]}


def explain(model: Any, images: list[bytes], target: str) -> dict[str, Any]:
    """Grad-CAM map (row-major floats and its grid size) and overlay PNG per image, in one batched pass."""
    from worker.engine import InvalidImage, explain

    try:
        explanations = explain(model, images, target)
    except InvalidImage as e:
        return invalid(f"image {e.index}: {e.reason}")
    except ValueError as e:
        return invalid(str(e))
    return {
        "results": [
            {
                "target": x.target,
                "height": x.grid.shape[0],
                "width": x.grid.shape[1],
                "grid": x.grid.flatten().tolist(),
                "overlay_png": x.overlay_png,
            }
            for x in explanations
        ]
    }
