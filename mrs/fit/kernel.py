"""A free lineshape: the model spectrum convolved with a short discrete kernel (as LCModel does).

In vivo lines are not Voigt: the voxel's field distribution leans to one side, has shoulders and
tails. A parametric lineshape then trades the misfit against the baseline and macromolecules and
moves every ratio (on the independent truth set, bench/truthset, a Voigt fit made 5 % Glu/tCr and
9 % NAA/tCr error even without noise, MM or baseline). The kernel adds what the group lineshape
cannot: taps at whole bins -K..K (bin = 1/(N dwell), the same on the decimated model grid) with
weights w_j, j != 0, and w_0 = 1 - sum w_j, so areas are unchanged. Each tap has a Gaussian prior
0 +- SD (the LM's prior rows), which keeps it from fitting noise; shift and width stay with the
group's parameters, which are not penalised and so are the cheaper way to explain a plain shift.

Convolution with taps at whole bins of the model grid is a multiplication of the time signal by
K(t) = sum_j w_j exp(2 pi i j n / N); d(model)/d w_j = full_c[win - j] - full_c[win], with
full_c the spectrum of the c-weighted model before the kernel.
"""

from __future__ import annotations

import numpy as np


class LineshapeKernel:
    def __init__(self, half_width_bins: int, win_m: np.ndarray, n_model: int) -> None:
        k = int(half_width_bins)
        self.offsets = np.array([j for j in range(-k, k + 1) if j != 0], int)
        # A roll by j bins of the model grid's DFT is the time signal times exp(2 pi i j n / N):
        # the kernel is applied as one complex factor per time point (cheaper than any gather).
        n = np.arange(n_model)
        self.phasors = np.exp(2j * np.pi * np.outer(self.offsets, n) / n_model).astype(np.complex64)
        # bins of the window for each tap (row 0: the centre), for the Jacobian
        self.idx = np.stack([(np.asarray(win_m) - j) % n_model for j in np.concatenate([[0], self.offsets])])

    @property
    def n_taps(self) -> int:
        return int(self.offsets.size)

    def time_factor(self, w: np.ndarray) -> np.ndarray | None:
        """K(t) on the model grid (complex64), or None for the identity (all taps zero)."""
        if not np.any(w):
            return None
        return np.complex64(1.0 - float(np.sum(w))) + w.astype(np.float32) @ self.phasors

    def jacobian(self, full_sum: np.ndarray) -> np.ndarray:
        """d(model)/d w_j (N_window, n_taps) from the full-grid spectrum of the c-weighted model
        before the kernel: a roll by j bins minus the centre."""
        return (full_sum[self.idx[1:]] - full_sum[self.idx[0]][None, :]).T
