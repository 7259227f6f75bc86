"""The artifact codec: values to data-only bytes and back, never running code from the data.

An encoded value is an uncompressed ZIP archive holding

* ``value.json`` — the structure: ``{"moviekit_artifact": FORMAT_VERSION, "value": ...}``;
* ``arrays/<i>.npy`` — numpy arrays (read with ``allow_pickle=False``, so object arrays are refused);
* ``tensors.safetensors`` — torch tensors (any dtype, bfloat16 included);
* ``bytes/<i>`` — raw ``bytes`` values (a task's output files).

JSON scalars, lists and dicts with string keys are stored as themselves; everything else is a
JSON object with a ``$``-tag (``$nd``, ``$npscalar``, ``$tensor``, ``$bytes``, ``$tuple``,
``$set``, ``$path``, ``$items`` for dicts with non-string or ``$`` keys, ``$record``).
Records (pydantic models) are stored field by field under their registered name and rebuilt
with ``model_validate``, so their validators check what is read.  A record name is resolved
only against the allow-list filled by :func:`register_record` (the core's records are on it;
a plugin registers its own with ``moviekit.register_record``): nothing named by the data is
ever imported.  Anything that does not decode cleanly raises :class:`CodecError`, which the
store treats like a corrupt artifact.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from pydantic import BaseModel

from .errors import MoviekitError

#: Version of the artifact format; part of the store layout, so a change recomputes once.
FORMAT_VERSION = 2

_RECORDS: dict[str, type[BaseModel]] = {}
_NAMES: dict[type[BaseModel], str] = {}


class CodecError(MoviekitError):
    """A value that cannot be stored, or bytes that are not a valid artifact of this format."""


def register_record(cls: type[BaseModel] | None = None, *, name: str | None = None) -> Any:
    """Allow the pydantic record class ``cls`` in stored artifacts (usable as a decorator).

    ``name`` (default ``module.QualName``) is the tag written to the artifact; reading an
    artifact looks the tag up in this allow-list only.  Registering a reloaded class again
    under its own name replaces it; a name taken by another class is an error.
    """

    def add(c: type[BaseModel]) -> type[BaseModel]:
        if not (isinstance(c, type) and issubclass(c, BaseModel)):
            raise TypeError(f"register_record: {c!r} is not a pydantic model class")
        tag = name or f"{c.__module__}.{c.__qualname__}"
        old = _RECORDS.get(tag)
        if old is not None and old is not c and f"{old.__module__}.{old.__qualname__}" != f"{c.__module__}.{c.__qualname__}":
            raise ValueError(f"register_record: the name '{tag}' is taken by {old.__module__}.{old.__qualname__}")
        if old is not None:
            _NAMES.pop(old, None)
        _RECORDS[tag] = c
        _NAMES[c] = tag
        return c

    return add if cls is None else add(cls)


def record_types() -> dict[str, type[BaseModel]]:
    """The allow-list: record name → class."""
    return dict(_RECORDS)


class _Writer:
    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self.tensors: dict[str, Any] = {}
        self.blobs: list[bytes] = []

    def enc(self, v: Any, where: str) -> Any:
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, (list, tuple, set, frozenset)):
            seq = sorted(v, key=repr) if isinstance(v, (set, frozenset)) else v
            out = [self.enc(x, f"{where}[{i}]") for i, x in enumerate(seq)]
            if isinstance(v, list):
                return out
            return {"$tuple": out} if isinstance(v, tuple) else {"$set": out}
        if isinstance(v, dict):
            if all(isinstance(k, str) and not k.startswith("$") for k in v):
                return {k: self.enc(x, f"{where}.{k}") for k, x in v.items()}
            return {"$items": [[self.enc(k, f"{where}<key>"), self.enc(x, f"{where}[{k!r}]")] for k, x in v.items()]}
        if isinstance(v, (bytes, bytearray, memoryview)):
            self.blobs.append(bytes(v))
            return {"$bytes": len(self.blobs) - 1}
        if isinstance(v, np.ndarray):
            if v.dtype.hasobject:
                raise CodecError(f"cannot store an object array at {where}: store numeric arrays or lists")
            self.arrays.append(v)
            return {"$nd": len(self.arrays) - 1}
        if isinstance(v, np.generic):
            self.arrays.append(np.asarray(v))
            return {"$npscalar": len(self.arrays) - 1}
        if isinstance(v, PurePath):
            return {"$path": str(v)}
        if isinstance(v, BaseModel):
            tag = _NAMES.get(type(v))
            if tag is None:
                raise CodecError(
                    f"cannot store a {type(v).__module__}.{type(v).__qualname__} at {where}: it is not a registered record "
                    "(call moviekit.register_record on its class)"
                )
            return {"$record": tag, "fields": {f: self.enc(getattr(v, f), f"{where}.{f}") for f in type(v).model_fields}}
        if type(v).__module__.startswith("torch") and type(v).__name__ in ("Tensor", "Parameter"):
            name = str(len(self.tensors))
            self.tensors[name] = v.detach().to("cpu").contiguous().clone()
            return {"$tensor": name}
        raise CodecError(
            f"cannot store a {type(v).__module__}.{type(v).__qualname__} at {where}: artifacts hold JSON data, "
            "numpy arrays, torch tensors, bytes and registered records only"
        )


def _entry(name: str) -> zipfile.ZipInfo:
    """A zip member with a fixed timestamp, so equal values encode to equal bytes (whoever writes them, whenever)."""
    return zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))


def encode(value: Any) -> bytes:
    """``value`` as the bytes of a data-only artifact (see the module docstring); deterministic."""
    w = _Writer()
    doc = {"moviekit_artifact": FORMAT_VERSION, "value": w.enc(value, "value")}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(_entry("value.json"), json.dumps(doc, separators=(",", ":")))
        for i, a in enumerate(w.arrays):
            with zf.open(_entry(f"arrays/{i}.npy"), "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(a), allow_pickle=False)
        if w.tensors:
            from safetensors.torch import save

            zf.writestr(_entry("tensors.safetensors"), save(w.tensors))
        for i, b in enumerate(w.blobs):
            zf.writestr(_entry(f"bytes/{i}"), b)
    return buf.getvalue()


class _Reader:
    def __init__(self, zf: zipfile.ZipFile) -> None:
        self.zf = zf
        self._tensors: dict[str, Any] | None = None

    def tensor(self, name: str) -> Any:
        if self._tensors is None:
            from safetensors.torch import load

            self._tensors = load(self.zf.read("tensors.safetensors"))
        return self._tensors[name]

    def dec(self, v: Any) -> Any:
        if isinstance(v, list):
            return [self.dec(x) for x in v]
        if not isinstance(v, dict):
            return v
        if not any(k.startswith("$") for k in v):
            return {k: self.dec(x) for k, x in v.items()}
        if "$nd" in v or "$npscalar" in v:
            i = int(v.get("$nd", v.get("$npscalar")))
            with self.zf.open(f"arrays/{i}.npy") as f:
                a = np.lib.format.read_array(f, allow_pickle=False)
            return a if "$nd" in v else a[()]
        if "$tensor" in v:
            return self.tensor(str(v["$tensor"]))
        if "$bytes" in v:
            return self.zf.read(f"bytes/{int(v['$bytes'])}")
        if "$tuple" in v:
            return tuple(self.dec(x) for x in v["$tuple"])
        if "$set" in v:
            return {self.dec(x) for x in v["$set"]}
        if "$path" in v:
            return Path(v["$path"])
        if "$items" in v:
            return {self.dec(k): self.dec(x) for k, x in v["$items"]}
        if "$record" in v:
            cls = _RECORDS.get(v["$record"])
            if cls is None:
                raise CodecError(f"unknown record type '{v['$record']}' (not on the allow-list of registered records)")
            return cls.model_validate({k: self.dec(x) for k, x in v["fields"].items()})
        raise CodecError(f"unknown tag {sorted(v)}")


def decode(data: bytes) -> Any:
    """The value of artifact bytes written by :func:`encode`; :class:`CodecError` for anything else."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            doc = json.loads(zf.read("value.json"))
            if not isinstance(doc, dict) or doc.get("moviekit_artifact") != FORMAT_VERSION:
                version = doc.get("moviekit_artifact") if isinstance(doc, dict) else None
                raise CodecError(f"not a moviekit artifact of format {FORMAT_VERSION} (format: {version!r})")
            return _Reader(zf).dec(doc["value"])
    except CodecError:
        raise
    except Exception as e:  # noqa: BLE001 - bad zip, JSON, npy, safetensors or record fields: unreadable, never fatal
        raise CodecError(f"not a readable moviekit artifact ({type(e).__name__}: {str(e)[:200]})") from None
