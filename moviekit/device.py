"""Device and precision selection; torch is imported only when called."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


def resolve_device(spec: str = "auto") -> Any:
    """``auto`` picks CUDA when present, else the CPU; ``cuda[:N]`` must exist."""
    import torch

    from .errors import MoviekitError

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MoviekitError(f"device {spec!r} (run.device or a component's device field) was asked for but no CUDA device is available; use `auto` or `cpu`")
        idx = int(spec.split(":")[1]) if ":" in spec else 0
        if idx >= torch.cuda.device_count():
            raise MoviekitError(f"device {spec!r} (run.device or a component's device field) was asked for but only {torch.cuda.device_count()} CUDA device(s) exist")
    if spec == "mps" and not torch.backends.mps.is_available():
        raise MoviekitError("run.device is 'mps' but MPS is not available")
    return torch.device(spec)


def effective_precision(device: Any, precision: str) -> str:
    """Mixed precision is used on CUDA only; elsewhere everything runs in fp32."""
    return precision if getattr(device, "type", str(device)) == "cuda" else "fp32"


@contextlib.contextmanager
def autocast(device: Any, precision: str) -> Iterator[None]:
    import torch

    prec = effective_precision(device, precision)
    if prec == "fp32":
        yield
        return
    dtype = torch.bfloat16 if prec == "bf16" else torch.float16
    with torch.autocast(device_type="cuda", dtype=dtype):
        yield


def grad_scaler(device: Any, precision: str) -> Any:
    """A GradScaler that is active for fp16 on CUDA and a no-op otherwise."""
    import torch

    return torch.amp.GradScaler("cuda", enabled=effective_precision(device, precision) == "fp16")


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
