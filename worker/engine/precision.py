"""Device and mixed-precision choice, made once per job so the card can record what was actually used."""

from __future__ import annotations

import torch

from .errors import EngineError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    available = torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    if device.type == "cuda" and not available:
        raise EngineError(f"device {spec} was requested but this machine has no such CUDA device")
    return device


def cpu_supports_bf16() -> bool:
    """oneDNN's check for native bf16 support; without it CPU bf16 is emulated and slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(spec: str, device: torch.device) -> str:
    """Turn "auto" into fp32/bf16/fp16 for this device and reject combinations the device cannot run."""
    if device.type == "cuda":
        bf16_ok = torch.cuda.is_bf16_supported(including_emulation=False)
        if spec == "auto":
            return "bf16" if bf16_ok else "fp16"
        if spec == "bf16" and not bf16_ok:
            raise EngineError(f"bf16 is not supported on {torch.cuda.get_device_name(device)}; use fp16")
        return spec
    if spec == "fp16":
        raise EngineError("precision fp16 needs a GPU; use bf16 or fp32 on cpu")
    if spec == "auto":
        return "bf16" if cpu_supports_bf16() else "fp32"
    return spec


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """Mixed precision for the forward pass; parameters and optimizer state stay fp32."""
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES.get(precision, torch.bfloat16),
                          enabled=precision in AUTOCAST_DTYPES)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """Loss scaling only for fp16, whose narrow exponent underflows small gradients; a no-op otherwise."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def prefers_channels_last(device: torch.device) -> bool:
    """NHWC is the layout GPU tensor cores convolve natively; on CPU oneDNN chooses its own layout."""
    return device.type == "cuda"
