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
            raise MoviekitError(
                f"device {spec!r} (run.device or a component's device field) was asked for but no CUDA device is available; use `auto` or `cpu`"
            )
        idx = int(spec.split(":")[1]) if ":" in spec else 0
        if idx >= torch.cuda.device_count():
            raise MoviekitError(
                f"device {spec!r} (run.device or a component's device field) was asked for but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
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


def derive_seed(seed: int, *scope: Any) -> int:
    """A 63-bit seed from the run seed and a scope (e.g. ``"task", "tasks[1]"``), the same on every machine."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps([int(seed), *map(str, scope)]).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@contextlib.contextmanager
def seeded(seed: int, *scope: Any) -> Iterator[int]:
    """Run a block with Python's, NumPy's and torch's (CPU and CUDA) global RNGs seeded from
    ``derive_seed(seed, *scope)``, and put the previous states back afterwards.

    The runner wraps every component build and every task in one, so a component's random
    initialisation or a task's training does not depend on what ran before it in the process
    (a task computed after a reused one starts from the same state as in an uninterrupted run).
    Yields the derived seed.
    """
    import random

    import numpy as np
    import torch

    derived = derive_seed(seed, *scope)
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    random.seed(derived)
    np.random.seed(derived % (2**32))
    torch.manual_seed(derived)
    try:
        yield derived
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
