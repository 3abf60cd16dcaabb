"""The one inference forward pass of the image models: eval weights, inference mode, the serving precision."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..precision import autocast


class ServedImageModel:
    """What every served image model holds beside its network (which each keeps with its own type): the card,
    its classes and the device."""

    # Set by prepare_for_serving: the autocast precision and weight layout of forward passes.
    precision = "fp32"
    channels_last = False
    # Where JPEGs are decoded (decode_jpeg on a batch, then resize_batch), or None for PIL on CPU threads. Set
    # by prepare_for_serving to a CUDA device, where decoding on the CPU would bound the replica.
    decode_device: torch.device | None = None

    def __init__(self, card: dict[str, Any], device: torch.device) -> None:
        self.card = card
        self.classes: list[str] = list(card["classes"])
        self.device = device

    def input_of(self, decoded: list[torch.Tensor]) -> torch.Tensor:
        """(N, 3, h, w) model input of uint8 (3, H, W) images decoded on decode_device, as the PIL path's
        transform makes it (every subclass says how: resized and cropped, or the whole image)."""
        raise NotImplementedError


def padded_size(n: int, device: torch.device) -> int:
    """The batch size a pass of n inputs runs at: on CUDA the next power of two.

    cuDNN builds kernel plans per input shape, slowly, on the first pass of each shape; dynamic batching sends
    every size from 1 to the max batch, so bucketing bounds a replica's cold shapes to log2(max batch) + 1. On
    CPU the extra rows would be paid in full, so there is no padding.
    """
    return 1 << (n - 1).bit_length() if device.type == "cuda" and n > 0 else n


def warm_up(forward: Callable[[torch.Tensor], Any], input_chw: tuple[int, ...], max_batch: int,
            device: torch.device) -> None:
    """Forward passes on blank inputs, so lazy set-up is not paid by callers: on CUDA one per batch size a pass
    can run at up to max_batch (each a cold cuDNN shape, see padded_size), on CPU one."""
    top = padded_size(max_batch, device) if device.type == "cuda" else 1
    for n in (1 << i for i in range(top.bit_length())):
        forward(torch.zeros(n, *input_chw))


def start_device(device: torch.device) -> None:
    """Create the CUDA context and the cuDNN and cuBLAS handles now (seconds, once per process), so that a
    serving replica pays them when it starts rather than under its first caller. Nothing on a CPU."""
    if device.type != "cuda":
        return
    with torch.inference_mode():
        x = torch.zeros(1, 3, 8, 8, device=device)
        torch.nn.functional.conv2d(x, torch.zeros(4, 3, 3, 3, device=device)).flatten(1) @ torch.zeros(
            144, 2, device=device)
    torch.cuda.synchronize(device)


def forward_logits(model: torch.nn.Module, batch: torch.Tensor, device: torch.device, precision: str = "fp32",
                   channels_last: bool = False) -> torch.Tensor:
    """float32 model output on CPU for an (N, 3, h, w) batch, in one forward pass on every device.

    On CPU, kernels choose algorithms by batch size, so an image's probabilities may differ in the last bits
    (about 1e-7) with what it is batched with; one pass per batch is what makes batching pay. channels_last
    must match how the model's weights were laid out (prepare_for_serving converts both). Rows padded on (see
    padded_size) are zeros; in eval mode no row sees another, and they are dropped from the output.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    n = len(batch)
    x = batch.to(device, memory_format=fmt)
    if (extra := padded_size(n, device) - n) > 0:
        x = torch.cat([x, x.new_zeros((extra, *x.shape[1:]))]).contiguous(memory_format=fmt)
    with torch.inference_mode(), autocast(device, precision):
        return model(x)[:n].float().cpu()
