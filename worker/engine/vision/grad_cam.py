"""Grad-CAM (Selvaraju et al. 2017): weight a convolutional layer's feature maps by the mean gradient of a
score with respect to each map, sum, ReLU.

Written on a forward hook rather than taken from pytorch-grad-cam or Captum: it is a dozen lines, and it lets
the whole batch go through one forward and one backward pass (a library's per-image loop would not), with the
backward starting at the hooked layer, so nothing below it keeps activations or computes gradients.

The score is pluggable: a Target maps the model's output to one scalar per image. Classifiers use the logit
of a class (class_score); segmentation models sum a class's logits over the pixels predicted as it
(region_score, as Vinogradova et al. 2020 adapt Grad-CAM to segmentation).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
from torch import nn

Target = Callable[[torch.Tensor], torch.Tensor]
"""Model output (N, ...) -> (N,) score per image; image i's score may depend only on image i's output."""


def class_score(indices: torch.Tensor) -> Target:
    """The logit of class indices[i] for image i; an index of -1 takes the image's top-scoring class."""

    def target(output: torch.Tensor) -> torch.Tensor:
        chosen = torch.where(indices.to(output.device) >= 0, indices.to(output.device), output.argmax(dim=1))
        return output.gather(1, chosen[:, None]).squeeze(1)

    return target


def region_score(indices: torch.Tensor) -> Target:
    """For (N, C, H, W) per-pixel logits: the sum of class indices[i]'s logits over the pixels image i predicts
    as that class (0 where it predicts none, which gives an all-zero map); an index of -1 takes the class that
    covers most of the image's pixels."""

    def target(output: torch.Tensor) -> torch.Tensor:
        predicted = output.argmax(dim=1)
        largest = torch.mode(predicted.flatten(1), dim=1).values
        wanted = indices.to(output.device)
        chosen = torch.where(wanted >= 0, wanted, largest)
        logits = output.gather(1, chosen[:, None, None, None].expand(-1, 1, *output.shape[2:])).squeeze(1)
        return (logits * (predicted == chosen[:, None, None])).sum(dim=(1, 2))

    return target


def grad_cam(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: Target) -> tuple[torch.Tensor, torch.Tensor]:
    """(maps (N, h, w) at the layer's resolution, each scaled to [0, 1], or all 0 where the score has no
    positive evidence; the model's output for x, detached).

    The model must be in eval mode: with BatchNorm in training mode an image's score would depend on the rest
    of the batch, and the summed backward below would mix images' gradients. Other threads may run the model
    meanwhile (the hook acts only on this thread's forward pass).
    """
    if model.training:
        raise ValueError("grad_cam needs the model in eval mode (model.eval())")
    captured: list[torch.Tensor] = []
    caller = threading.get_ident()

    def keep(module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor | None:
        # A served model is shared by threads: forward passes of other threads (other requests) go untouched.
        if threading.get_ident() != caller:
            return None
        # A fresh leaf: the backward pass stops here, whatever requires_grad says below the layer.
        leaf = output.detach().requires_grad_(True)
        captured.append(leaf)
        return leaf

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            output = model(x)
            scores = target(output)
            # Scores of different images are independent, so one backward of their sum gives each its own.
            (grads,) = torch.autograd.grad(scores.sum(), captured[0])
    finally:
        handle.remove()
    features = captured[0].detach()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    maps = torch.relu((weights * features).sum(dim=1)).float()
    peak = maps.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, maps / peak.clamp_min(torch.finfo(maps.dtype).tiny), 0.0), output.detach()
