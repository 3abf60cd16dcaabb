"""Serving a fine-tuned U-Net from its model directory: class-index masks at each input's own size, per-class
pixel shares and, on request, per-class probability maps."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.nn import functional as F
from torchvision.transforms import functional as TF

from fineserve_common.answers import Segmentation

from ..images import decode_all, decode_tensors, resize_batch
from ..model_card import load_model_dir
from .forward import ServedImageModel, forward_logits, warm_up
from .unet import ResNetUNet


def palette(n: int) -> list[int]:
    """n distinct RGB colours (flattened, 768 values for PIL): class i's colour in the mask PNG, so a viewer
    shows the classes apart while the pixel values stay class indices. Bit-spread of the index, as PASCAL VOC's."""
    colours = []
    for i in range(256):
        r = g = b = 0
        c = i
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        colours += [r, g, b]
    return colours[: 3 * max(n, 1)] + [0] * (768 - 3 * max(n, 1))


def _image(mode: str, values: torch.Tensor, colours: list[int] | None = None) -> Image.Image:
    """An 8-bit PIL image ("L" or "P") of an (H, W) tensor of values in [0, 255]."""
    height, width = values.shape
    image = Image.frombytes(mode, (width, height), values.to(torch.uint8).contiguous().numpy().tobytes())
    if colours:
        image.putpalette(colours)
    return image


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


class ImageSegmenter(ServedImageModel):
    """A loaded U-Net in eval mode. preprocess -> predict_logits -> segmentation, public so that a server can
    run the images of several callers as one batch (every input is resized to the model's input size)."""

    def __init__(self, model: ResNetUNet, card: dict[str, Any], device: torch.device) -> None:
        super().__init__(card, device)
        self.model = model
        self.input_hw = [int(v) for v in card["input_size"]]
        self.mean, self.std = card["normalization"]["mean"], card["normalization"]["std"]
        self.palette = palette(len(self.classes))

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "auto") -> ImageSegmenter:
        return cls(
            *load_model_dir(model_dir, "segmentation", lambda card: ResNetUNet(card["arch"], card["n_classes"]), device)
        )

    def preprocess(self, images: list[bytes]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """((N, 3, h, w) model input, each image's (height, width)); InvalidImage names the first bad image."""
        if not images:
            return torch.empty(0, 3, *self.input_hw), []
        if self.decode_device is not None:
            decoded = decode_tensors(images, self.decode_device)
            return self.input_of(decoded), [(int(x.shape[1]), int(x.shape[2])) for x in decoded]
        prepared = decode_all(images, lambda image: (self.transform(image), (image.height, image.width)))
        return torch.stack([x for x, _ in prepared]), [size for _, size in prepared]

    def input_of(self, decoded: list[torch.Tensor]) -> torch.Tensor:
        """The whole image resized to the model's input size: transform on the device."""
        return resize_batch(decoded, tuple(self.input_hw), None, self.mean, self.std)

    def transform(self, image: Image.Image) -> torch.Tensor:
        """(3, h, w) model input of a decoded image: the whole image, resized to the model's input size."""
        x = TF.resize(TF.to_tensor(image), self.input_hw, antialias=True)
        return TF.normalize(x, self.mean, self.std)

    def predict_logits(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) float32 per-pixel logits on CPU (see forward_logits)."""
        if not len(batch):
            return torch.empty(0, len(self.classes), *self.input_hw)
        return forward_logits(self.model, batch, self.device, self.precision, self.channels_last)

    def warm_up(self, max_batch: int = 1) -> None:
        warm_up(self.predict_logits, (3, *self.input_hw), max_batch, self.device)

    def segmentation(self, logits: torch.Tensor, size: tuple[int, int], probabilities: bool) -> Segmentation:
        """One image's (C, h, w) logits scaled (bilinear) to its (height, width), then argmax. Class by class,
        so a large input needs memory for a few maps rather than C of them."""
        height, width = size
        with torch.inference_mode():
            best = torch.full((height, width), -torch.inf)
            mask = torch.zeros((height, width), dtype=torch.uint8)
            for c in range(len(self.classes)):
                up = self._upsample(logits[c], size)
                better = up > best
                best = torch.where(better, up, best)
                mask[better] = c
            counts = torch.bincount(mask.flatten().long(), minlength=len(self.classes)).tolist()
            probs = self._probabilities(logits, size, best) if probabilities else []
        shares = [(name, n / (height * width)) for name, n in zip(self.classes, counts, strict=True)]
        return Segmentation(width, height, _png(_image("P", mask, self.palette)), shares, probs)

    def _probabilities(
        self,
        logits: torch.Tensor,
        size: tuple[int, int],
        best: torch.Tensor,
    ) -> list[tuple[str, bytes]]:
        """Softmax over the upsampled logits, shifted by each pixel's best logit so exp cannot overflow."""
        total = torch.zeros_like(best)
        for c in range(len(self.classes)):
            total += (self._upsample(logits[c], size) - best).exp()
        return [
            (name, _png(_image("L", ((self._upsample(logits[c], size) - best).exp() / total * 255).round())))
            for c, name in enumerate(self.classes)
        ]

    @staticmethod
    def _upsample(logit: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(logit[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]

    def segment(self, images: list[bytes], probabilities: bool = False) -> list[Segmentation]:
        batch, sizes = self.preprocess(images)
        logits = self.predict_logits(batch)
        return [self.segmentation(x, size, probabilities) for x, size in zip(logits, sizes, strict=True)]
