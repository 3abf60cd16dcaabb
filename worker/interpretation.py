"""What the serving replicas do for ScoreLabels and Explain, off the event loop: engine calls turned into
typed answers (fineserve_common.answers), or a Refused for input the model cannot take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fineserve_common.answers import Heatmap, LabelScores, Refused, TopClasses
from fineserve_common.errors import InvalidArgument


@dataclass(frozen=True)
class LabelCut:
    """A ScoreLabels call's option in a shared forward pass: its threshold (None: the model's tuned ones)."""

    threshold: float | None


def image_answers(model: Any, probs: Any, option: int | LabelCut) -> list[TopClasses] | list[LabelScores]:
    """A call's answers from its rows of the served probabilities: ScoreLabels' label scores for a LabelCut,
    else Classify's top option classes."""
    if isinstance(option, LabelCut):
        return model.label_scores(probs, option.threshold)
    return [TopClasses(top) for top in model.top_k(probs, option)]


def not_multi_label(model: Any) -> Refused | None:
    """ScoreLabels' refusal of a model that is not multi-label (the door checks the task; a replica too)."""
    from worker.engine import MultiLabelClassifier

    if isinstance(model, MultiLabelClassifier):
        return None
    return Refused.of(InvalidArgument(f"ScoreLabels needs a multi-label model; this one is {model.TASK}"))


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
                    overlay_png=x.overlay_png, probability=x.probability, layer=x.layer, warning=x.warning)
            for x in explanations]
