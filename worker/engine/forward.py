"""The one inference forward pass of the image models: eval weights, inference mode, the serving precision."""

from __future__ import annotations

import torch

from .precision import autocast


def forward_logits(model: torch.nn.Module, batch: torch.Tensor, device: torch.device, precision: str = "fp32",
                   channels_last: bool = False) -> torch.Tensor:
    """float32 model output on CPU for an (N, 3, h, w) batch.

    On GPU the batch is one forward pass. On CPU each image gets its own: kernels choose algorithms by batch
    size, so this keeps an image's answer bit-identical whatever it is batched with. channels_last must match
    how the model's weights were laid out (prepare_for_serving converts both).
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    batch = batch.to(device, memory_format=fmt)
    with torch.inference_mode(), autocast(device, precision):
        parts = batch.split(1) if device.type == "cpu" else [batch]
        return torch.cat([model(x) for x in parts]).float().cpu()
