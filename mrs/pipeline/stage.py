"""What a stage is. A stage is one small class in one file with one job (mrs/pipeline/*.py):

    class MyStage(TransientStage):             # or BlockStage
        name = "my_stage"
        def process(self, data, ctx):          # -> (data, estimates)
            ...

Per-transient stages see each metabolite transient in order (coils -> combined FID -> ... -> aligned
FID) and return the data with a dict of estimates (named like the record values they become).
Their state changes only in `apply(record, ctx)`, which the runner calls for every record, live or
from the cache: that is what makes a cached session replay exactly. Optional hooks: `scan` (noise
and water-reference scans), `prime` (the first transients of the session, before any reference
exists), `state` (arrays a "state" record carries), `after` (live only: a decision that needs the
data itself, such as rebuilding the running reference).

Per-block stages see a window of processed transients: the first gets the transients, each later
one the previous one's data; estimates are named after BlockResult / BlockQC fields (mrs/results.py)
and become those fields. A stage that cannot go on raises `BlockFailed(message)`: the block is
published as failed with that message, and processing continues.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mrs.pipeline.record import CacheRecord


class BlockFailed(Exception):
    """A block that cannot be fitted; the message says why, in one line."""


class TransientStage:
    name = "stage"
    settings: dict[str, Any] = {}

    def scan(self, kind: str, data: np.ndarray, ctx) -> np.ndarray | None:
        """A noise ("noise") or water-reference ("water_ref") scan; return the data for the next stage,
        or None when it goes no further."""
        return data

    def prime(self, stack: np.ndarray, ctx) -> np.ndarray | None:
        """The session's first transients, stacked, before any of them is processed. A stage of the
        runner's `front` (coil data -> FID) returns the stack transformed as `process` would (and the
        transients then skip its `process`); a later stage uses it to start its state (returns None)."""
        return stack

    def process(self, data: np.ndarray, ctx) -> tuple[np.ndarray, dict[str, Any]]:
        raise NotImplementedError

    def state(self, ctx) -> dict[str, np.ndarray]:
        return {}

    def apply(self, rec: CacheRecord, ctx) -> None:
        """Take over what a record says (the only place a stage's state changes)."""

    def after(self, ctx) -> None:
        """Live only, after the transient's record was applied."""


class BlockStage:
    name = "stage"

    def process(self, data: Any, ctx) -> tuple[Any, dict[str, Any]]:
        raise NotImplementedError
