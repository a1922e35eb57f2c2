"""The generic record of the per-transient half of the pipeline: what the preprocessing cache stores.

Every change of per-transient state is a record, and the state changes *only* by applying records
(`Stage.apply`): live, a stage computes, the runner makes the record and applies it; resuming or
refitting from the cache, the runner applies the stored records. So both paths go through one code
path, and a cached session gives exactly the blocks the live run gave.

A record names no fields the cache has to know: `values` holds scalar estimates (JSON), `arrays`
holds numpy arrays (stored with their dtype and shape). Kinds: "state" (coil weights, eddy phase),
"water" (a combined water reference), "reference" (a new running reference), "transient" (one
metabolite transient, aligned, with its estimates), "error" (a transient that could not be processed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("state", "water", "reference", "transient", "error")


@dataclass(frozen=True)
class CacheRecord:
    kind: str
    seq: int = -1
    t_s: float = 0.0
    values: Mapping[str, Any] = field(default_factory=dict)      # float, int, str, bool or None
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def many(cls, kind: str, seqs: list[int], times_s: list[float], values: list[Mapping[str, Any]],
             arrays: list[Mapping[str, np.ndarray]]) -> list[CacheRecord]:
        """Records of one kind, as the constructor makes them, at half its cost: the cache reader makes
        thousands, and a frozen dataclass's __init__ sets each field through object.__setattr__."""
        new, out = object.__new__, []
        for seq, t_s, v, a in zip(seqs, times_s, values, arrays, strict=True):
            rec = new(cls)
            rec.__dict__.update(kind=kind, seq=seq, t_s=t_s, values=v, arrays=a)
            out.append(rec)
        return out

    def value(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    @property
    def fid(self) -> np.ndarray | None:
        return self.arrays.get("fid")

    @property
    def rejected(self) -> str | None:
        return self.values.get("rejected")
