"""Serving a fine-tuned image classifier from its model directory (safetensors + card, no pickle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fineserve_common.tasks import IMAGE_CLASSIFICATION

from ..images import decode_all, decode_tensors, resize_batch
from ..model_card import load_model_dir
from .forward import ServedImageModel, forward_logits, warm_up
from .resnet import ResNetClassifier
from .transforms import valid_transform


def top_classes(probs: torch.Tensor, classes: list[str], k: int) -> list[list[tuple[str, float]]]:
    """Per row of (N, C) probabilities, the k (at most C) (class, probability) pairs, most likely first."""
    values, indices = probs.topk(min(k, len(classes)), dim=1)
    return [[(classes[i], p) for i, p in zip(row_i, row_p, strict=True)]
            for row_i, row_p in zip(indices.tolist(), values.tolist(), strict=True)]


class ImageClassifier(ServedImageModel):
    """A loaded model in eval mode. On CPU (fp32) the same batch gives bit-identical probabilities; an image
    batched with others gets the same ones to float32 rounding (about 1e-7, see forward_logits).

    predict_proba = predict_tensor(preprocess(...)); the steps are public so a server can batch the
    preprocessed images of several callers into one forward pass.
    """

    TASK = IMAGE_CLASSIFICATION

    def __init__(self, model: ResNetClassifier, card: dict[str, Any], device: torch.device) -> None:
        super().__init__(card, device)
        self.model = model
        norm = card["normalization"]
        self.transform = valid_transform(card["image_size"], norm["mean"], norm["std"])

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "auto") -> ImageClassifier:
        return cls(*load_model_dir(model_dir, cls.TASK,
                                   lambda card: ResNetClassifier(card["arch"], card["n_classes"]), device))

    def preprocess(self, images: list[bytes]) -> torch.Tensor:
        """(N, 3, S, S) float32 model input (on decode_device when set); InvalidImage names the first image that
        cannot be decoded."""
        size = self.card["image_size"]
        if not images:
            return torch.empty(0, 3, size, size)
        if self.decode_device is not None:
            return self.input_of(decode_tensors(images, self.decode_device))
        return torch.stack(decode_all(images, self.transform))

    def input_of(self, decoded: list[torch.Tensor]) -> torch.Tensor:
        """The short side resized to image_size, then the centre square: valid_transform on the device."""
        size, norm = self.card["image_size"], self.card["normalization"]
        return resize_batch(decoded, size, size, norm["mean"], norm["std"])

    @staticmethod
    def activate(logits: torch.Tensor) -> torch.Tensor:
        """Logits to the probabilities the model serves: softmax over classes."""
        return logits.softmax(dim=1)

    def predict_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, C) float32 probabilities (see activate) on CPU for a preprocessed batch (see forward_logits)."""
        if not len(batch):
            return torch.empty(0, len(self.classes))
        return self.activate(forward_logits(self.model, batch, self.device, self.precision, self.channels_last))

    def warm_up(self, max_batch: int = 1) -> None:
        size = self.card["image_size"]
        warm_up(self.predict_tensor, (3, size, size), max_batch, self.device)

    def predict_proba(self, images: list[bytes]) -> torch.Tensor:
        return self.predict_tensor(self.preprocess(images))

    def top_k(self, probs: torch.Tensor, k: int) -> list[list[tuple[str, float]]]:
        """Per row, the k (at most the number of classes) (class, probability) pairs, most likely first."""
        if k < 1:
            raise ValueError(f"top_k must be >= 1 (got {k})")
        return top_classes(probs, self.classes, k)

    def classify(self, images: list[bytes], top_k: int = 5) -> list[list[tuple[str, float]]]:
        return self.top_k(self.predict_proba(images), top_k)
