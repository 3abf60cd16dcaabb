"""The one inference forward pass of the image models: eval weights, inference mode, the serving precision."""

from __future__ import annotations

import torch

from .precision import autocast


def forward_logits(model: torch.nn.Module, batch: torch.Tensor, device: torch.device, precision: str = "fp32",
                   channels_last: bool = False) -> torch.Tensor:
    """float32 model output on CPU for an (N, 3, h, w) batch, in one forward pass on every device.

    On CPU, kernels choose algorithms by batch size, so an image's probabilities may differ in the last bits
    (about 1e-7) with what it is batched with; one pass per batch is what makes batching pay. channels_last
    must match how the model's weights were laid out (prepare_for_serving converts both).
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    batch = batch.to(device, memory_format=fmt)
    with torch.inference_mode(), autocast(device, precision):
        return model(batch).float().cpu()
