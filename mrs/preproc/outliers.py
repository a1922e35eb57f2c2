"""Online rejection of corrupted transients, each with a reason.

Each aligned transient is compared with the running reference inside the alignment window:
  - "low_signal":      its amplitude relative to the reference is below `min_scale`, when the
                       reference is strong enough for that to be measurable; or below
                       `drop_scale` by a margin the measurement cannot explain (`drop_sd` standard
                       errors of the scale, which is 1 / scale_snr): motion that leaves 60 % of the
                       signal, broadened, without lipid or a large shift;
  - "frequency_jump":  its frequency is more than `max_jump_hz` from the median of the recent ones;
  - "lipid" / "motion": the energy of (transient - reference), divided by the energy expected
                       from noise alone, is an outlier: robust z-score against the recent history
                       (median, MAD) or, before there is history, above `first_ratio`. It is
                       "lipid" when most of the excess sits in the lipid region (0.8-1.8 ppm).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TransientMetrics:
    freq_hz: float
    scale: float
    scale_snr: float       # reference strength / noise (how well `scale` is measured)
    residual_ratio: float  # |x - s ref|^2 in the window / expected noise energy
    lipid_ratio: float     # the same over the lipid region


class OutlierDetector:
    def __init__(self, max_jump_hz: float = 6.0, min_scale: float = 0.5, z_threshold: float = 6.0,
                 first_ratio: float = 2.0, history: int = 64, drop_scale: float = 0.7,
                 drop_sd: float = 10.0) -> None:
        self.max_jump_hz = max_jump_hz
        self.min_scale = min_scale
        self.drop_scale = drop_scale
        self.drop_sd = drop_sd
        self.z_threshold = z_threshold
        self.first_ratio = first_ratio
        self._res: deque[float] = deque(maxlen=history)
        self._lip: deque[float] = deque(maxlen=history)
        self._freq: deque[float] = deque(maxlen=8)

    def reset(self) -> None:
        """Forget the history (after the reference was rebuilt)."""
        self._res.clear()
        self._lip.clear()
        self._freq.clear()

    def replay(self, freq_hz: float, residual_ratio: float, lipid_ratio: float, accepted: bool) -> None:
        """The history update after a transient was assessed (also when resuming from a cache)."""
        self._freq.append(freq_hz)  # a sustained jump becomes the new median after a few
        if accepted:
            self._res.append(residual_ratio)
            self._lip.append(lipid_ratio)

    def _threshold(self, hist: deque[float]) -> float:
        if len(hist) < 8:
            return self.first_ratio
        h = np.asarray(hist)
        med = float(np.median(h))
        mad = 1.4826 * float(np.median(np.abs(h - med)))
        # never tighter than 50% above the median: slow signal changes (residual water, drift of
        # the lineshape) widen the spread beyond noise; motion gives far larger ratios
        return max(med + self.z_threshold * mad, 1.5 * med)

    def assess(self, m: TransientMetrics) -> str | None:
        """Reason for rejection, or None. Accepted transients update the history."""
        reason = self.decide(m)
        self.replay(m.freq_hz, m.residual_ratio, m.lipid_ratio, accepted=reason is None)
        return reason

    def decide(self, m: TransientMetrics) -> str | None:
        """Reason for rejection, or None; the history is left as it is (`replay` updates it)."""
        reason = None
        if m.scale_snr > 10 and m.scale < self.min_scale:
            reason = "low_signal"
        elif (len(self._res) >= 8 and m.scale < self.drop_scale
              and (1.0 - m.scale) * m.scale_snr > self.drop_sd):
            # (not before 8 accepted: the first reference, from 8 transients aligned to their own
            # mean, can match the next ones poorly; with a poor shim their scale starts near 0.5)
            reason = "low_signal"
        elif len(self._freq) >= 3 and abs(m.freq_hz - float(np.median(self._freq))) > self.max_jump_hz:
            reason = "frequency_jump"
        else:
            thr_res = self._threshold(self._res)
            thr_lip = self._threshold(self._lip)
            if m.lipid_ratio > thr_lip and m.lipid_ratio > m.residual_ratio:
                reason = "lipid"
            elif m.residual_ratio > thr_res:
                reason = "motion"
        return reason
