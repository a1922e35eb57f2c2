"""Block averaging: non-overlapping blocks of N transients or sliding windows with a step."""

from __future__ import annotations

import numpy as np


def window_starts(n_transients: int, block: int, step: int | None = None) -> list[int]:
    """Start indices of the complete windows over `n_transients` (step = block: no overlap)."""
    step = step or block
    if block < 1 or step < 1:
        raise ValueError("block and step must be at least 1")
    return list(range(0, max(n_transients - block + 1, 0), step))


def block_of(index: int, block: int, step: int | None = None) -> int:
    """The window that starts at or before transient `index` and contains it."""
    step = step or block
    return index // step


def average(fids: np.ndarray, accepted: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Mean of the accepted FIDs (n, points) and how many went in."""
    fids = np.asarray(fids)
    if accepted is not None:
        fids = fids[np.asarray(accepted, bool)]
    if len(fids) == 0:
        return np.zeros(np.asarray(fids).shape[-1], complex), 0
    return fids.mean(0), len(fids)
