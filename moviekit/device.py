"""Device and precision selection; torch is imported only when called."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import sys
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
    """Seed Python's, NumPy's and torch's global RNGs; torch is not imported for it (see :func:`seeded`)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    _torch_seeds.base = seed
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
    else:
        _torch_seeds.watch()


def derive_seed(seed: int, *scope: Any) -> int:
    """A 63-bit seed from the run seed and a scope (e.g. ``"task", "tasks[1]"``), the same on every machine."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps([int(seed), *map(str, scope)]).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class _TorchSeeds:
    """torch's RNG seeded lazily: when torch is imported while seeds are pending (a :func:`seeded` block
    or :func:`seed_everything` ran before any component imported it), it starts from the seed it
    would have had, had it been imported before.  So a run whose components never need torch never
    imports it, and one that imports it inside a block draws the same numbers as one that had it
    imported already."""

    def __init__(self) -> None:
        self.base: int | None = None  # seed_everything's seed
        self.stack: list[int] = []  # derived seeds of the open seeded() blocks entered without torch
        self.fresh: Any = None  # torch's state straight after its import, before any seeding
        self._hook: _AfterImport | None = None

    def current(self) -> int | None:
        return self.stack[-1] if self.stack else self.base

    def watch(self) -> None:
        if self._hook is None and "torch" not in sys.modules:
            self._hook = _AfterImport("torch", self._imported)
            sys.meta_path.insert(0, self._hook)

    def _unwatch(self) -> None:
        if self._hook is not None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self._hook)
            self._hook = None

    def _imported(self, torch: Any) -> None:
        self._unwatch()
        self.fresh = torch.get_rng_state()
        seed = self.current()
        if seed is not None:
            torch.manual_seed(seed)

    def reset(self, torch: Any) -> None:
        """torch's state after a block that imported it: as if it had been imported at the block's end."""
        seed = self.current()
        if seed is not None:
            torch.manual_seed(seed)
        elif self.fresh is not None:
            torch.set_rng_state(self.fresh)


class _AfterImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``name`` with its own loader, then calls ``callback(module)``."""

    def __init__(self, name: str, callback: Any):
        self.name, self.callback = name, callback
        self.inner: Any = None
        self.busy = False

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.name or self.busy:
            return None
        self.busy = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self.busy = False
        if spec is None or spec.loader is None:
            return None
        self.inner, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = module.__spec__.loader = self.inner
        self.inner.exec_module(module)
        self.callback(module)


_torch_seeds = _TorchSeeds()


@contextlib.contextmanager
def seeded(seed: int, *scope: Any) -> Iterator[int]:
    """Run a block with Python's, NumPy's and torch's (CPU and CUDA) global RNGs seeded from
    ``derive_seed(seed, *scope)``, and put the previous states back afterwards.

    The runner wraps every component build and every task in one, so a component's random
    initialisation or a task's training does not depend on what ran before it in the process
    (a task computed after a reused one starts from the same state as in an uninterrupted run).
    torch is not imported for it: when the block imports torch, torch starts from the derived
    seed all the same. Yields the derived seed.
    """
    import random

    import numpy as np

    derived = derive_seed(seed, *scope)
    py_state, np_state = random.getstate(), np.random.get_state()
    torch = sys.modules.get("torch")
    if torch is not None:
        torch_state = torch.get_rng_state()
        cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        torch.manual_seed(derived)
    else:
        _torch_seeds.stack.append(derived)
        _torch_seeds.watch()
    random.seed(derived)
    np.random.seed(derived % (2**32))
    try:
        yield derived
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        if torch is not None:
            torch.set_rng_state(torch_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state_all(cuda_state)
        else:
            _torch_seeds.stack.pop()
            now = sys.modules.get("torch")
            if now is not None:
                _torch_seeds.reset(now)
