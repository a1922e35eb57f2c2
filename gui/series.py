"""Column storage for per-block series that grows by doubling (no Qt).

A display redraws from these arrays many times a second; appending one block must not copy the
whole history, so each column preallocates and doubles its capacity when full (amortised O(1)).
"""

from __future__ import annotations

import numpy as np


class GrowingArray:
    """A 1-D numpy array with cheap appends; `view()` is the filled part (no copy)."""

    def __init__(self, dtype: type | np.dtype = np.float64, capacity: int = 64) -> None:
        self._a = np.empty(max(1, capacity), dtype=dtype)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def capacity(self) -> int:
        return int(self._a.shape[0])

    def append(self, value: float) -> None:
        if self._n == self._a.shape[0]:
            grown = np.empty(2 * self._a.shape[0], dtype=self._a.dtype)
            grown[: self._n] = self._a[: self._n]
            self._a = grown
        self._a[self._n] = value
        self._n += 1

    def __setitem__(self, i: int, value: float) -> None:
        if not 0 <= i < self._n:
            raise IndexError(f"row {i} outside 0..{self._n - 1}")
        self._a[i] = value

    def view(self) -> np.ndarray:
        return self._a[: self._n]

    def clear(self) -> None:
        self._n = 0
