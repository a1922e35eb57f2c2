"""A free lineshape: the model spectrum convolved with a short discrete kernel (as LCModel does).

In vivo lines are not Voigt: the voxel's field distribution leans to one side, has shoulders and
tails. A parametric lineshape then trades the misfit against the baseline and macromolecules and
moves every ratio (on the independent truth set, bench/truthset, a Voigt fit made 5 % Glu/tCr and
9 % NAA/tCr error even without noise, MM or baseline). The kernel adds what the group lineshape
cannot: taps at whole bins -K..K (bin = 1/(N dwell), the same on the decimated model grid) with
weights w_j, j != 0, and w_0 = 1 - sum w_j, so areas are unchanged. Each tap has a Gaussian prior
0 +- SD (the LM's prior rows), which keeps it from fitting noise; shift and width stay with the
group's parameters, which are not penalised and so are the cheaper way to explain a plain shift.

Convolution on the full model grid is a sum of rolled copies; only the window bins are formed:
out[:, k] = sum_j w_j full[:, (win_k - j) mod N]. d(model)/d w_j = full_c[win - j] - full_c[win].
"""

from __future__ import annotations

import numpy as np


class LineshapeKernel:
    def __init__(self, half_width_bins: int, win_m: np.ndarray, n_model: int) -> None:
        k = int(half_width_bins)
        self.offsets = np.array([j for j in range(-k, k + 1) if j != 0], int)
        # row 0: the centre tap; rows 1..: the offsets, in order
        self.idx = np.stack([(np.asarray(win_m) - j) % n_model for j in np.concatenate([[0], self.offsets])])

    @property
    def n_taps(self) -> int:
        return int(self.offsets.size)

    def window(self, full: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Window bins of `full` (rows, N_model) convolved with the kernel: (rows, N_window)."""
        out = full[:, self.idx[0]]
        if not np.any(w):
            return out
        out = out * (1.0 - float(np.sum(w)))
        for j in np.nonzero(w)[0]:
            out += w[j] * full[:, self.idx[j + 1]]
        return out

    def jacobian(self, full_sum: np.ndarray) -> np.ndarray:
        """d(model)/d w_j (N_window, n_taps) from the full-grid spectrum of the c-weighted model."""
        return (full_sum[self.idx[1:]] - full_sum[self.idx[0]][None, :]).T
