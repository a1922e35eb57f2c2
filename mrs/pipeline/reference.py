"""The running reference that transients are registered to and compared with: the mean of the last
accepted (aligned) transients, and the run of rejected ones that may force a rebuild."""

from __future__ import annotations

from collections import deque

import numpy as np


class RunningReference:
    def __init__(self, length: int) -> None:
        self.fids: deque[np.ndarray] = deque(maxlen=length)
        self.sum: np.ndarray | None = None
        self.run_rejected: list[np.ndarray] = []   # consecutive rejected transients, before alignment

    @property
    def ready(self) -> bool:
        return self.sum is not None

    @property
    def n(self) -> int:
        return len(self.fids)

    def mean(self) -> np.ndarray:
        return self.sum / len(self.fids)

    def set(self, ref: np.ndarray) -> None:
        """A new reference (the first, or a rebuild): it stands alone until transients join it."""
        self.fids.clear()
        self.fids.append(ref)
        self.sum = ref.copy()
        self.run_rejected = []

    def push(self, fid: np.ndarray) -> None:
        """An accepted transient joins (the oldest leaves once the window is full)."""
        if len(self.fids) == self.fids.maxlen:
            self.sum = self.sum - self.fids[0]
        self.fids.append(fid)
        self.sum = self.sum + fid
