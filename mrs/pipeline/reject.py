"""Outlier rejection with a reason (mrs/preproc/outliers.py): each aligned transient is compared with
the running reference inside the alignment window and over the lipid region; what does not fit the
recent history is rejected as motion, lipid, frequency_jump or low_signal. Its settings are the
plan's `[outliers]` table, never the alarm thresholds."""

from __future__ import annotations

import numpy as np

from mrs.pipeline.record import CacheRecord
from mrs.pipeline.stage import TransientStage
from mrs.preproc.outliers import OutlierDetector, TransientMetrics

LIPID_PPM = (0.8, 1.8)


class Reject(TransientStage):
    name = "reject"

    def __init__(self, grid, aligner, **settings) -> None:
        self.settings = {"max_jump_hz": 6.0, **settings}
        self.detector = OutlierDetector(**self.settings)
        ppm = grid.ppm()
        self._lipid_win = np.nonzero((ppm >= LIPID_PPM[0]) & (ppm <= LIPID_PPM[1]))[0]
        # Smooth differences (residual-water tails, baseline) are not what marks a bad transient:
        # the residual is taken after removing a low-order polynomial over the window.
        self._smooth_q = np.linalg.qr(np.polynomial.legendre.legvander(np.linspace(-1, 1, aligner.win.size), 4))[0]
        self._lipid_q = np.linalg.qr(np.polynomial.legendre.legvander(
            np.linspace(-1, 1, self._lipid_win.size), 2))[0]
        self._n = grid.n

    def process(self, data: np.ndarray, ctx) -> tuple[np.ndarray, dict]:
        ref = ctx.reference.mean()
        scale = ctx.estimates["scale"]
        noise_var = self._noise_var(ctx.unaligned)
        expected = noise_var * (1.0 + scale**2 / max(ctx.reference.n, 1))
        ref_w = ctx.aligner.window_spectrum(ref)
        diff = ctx.aligner.window_spectrum(data) - scale * ref_w
        diff = diff - self._smooth_q @ (self._smooth_q.T @ diff)
        res_ratio = float(np.sum(np.abs(diff) ** 2)
                          / (max(expected, 1e-300) * (diff.size - self._smooth_q.shape[1])))
        # the lipid region is outside the alignment window: compare full spectra there
        d_lip = np.fft.fft(data)[self._lipid_win] - scale * np.fft.fft(ref)[self._lipid_win]
        d_lip = d_lip - self._lipid_q @ (self._lipid_q.T @ d_lip)  # drop smooth tails (residual water)
        lip_ratio = float(np.sum(np.abs(d_lip) ** 2)
                          / (max(expected, 1e-300) * max(d_lip.size - self._lipid_q.shape[1], 1)))
        scale_snr = float(np.sqrt(np.mean(np.abs(ref_w) ** 2) / max(noise_var, 1e-300)) * np.sqrt(ref_w.size))
        reason = self.detector.decide(TransientMetrics(ctx.estimates["freq_hz"], scale, scale_snr, res_ratio,
                                                       lip_ratio))
        return data, {"rejected": reason, "residual_ratio": res_ratio, "lipid_ratio": lip_ratio}

    def apply(self, rec: CacheRecord, ctx) -> None:
        if rec.kind == "reference" and rec.value("rebuild"):
            self.detector.reset()  # a new reference: the outlier history starts again
        elif rec.kind == "transient":
            self.detector.replay(float(rec.value("freq_hz")), float(rec.value("residual_ratio")),
                                 float(rec.value("lipid_ratio")), accepted=rec.rejected is None)

    def _noise_var(self, fid: np.ndarray) -> float:
        """Mean |X|^2 per point of pure noise in the spectrum (from the outer spectral regions)."""
        spec = np.fft.fft(fid)
        k = max(8, self._n // 8)
        edge = spec[self._n // 2 - k:self._n // 2 + k]  # highest |frequency|: far from any metabolite
        edge = edge - edge.mean()
        return float(np.mean(np.abs(edge) ** 2))
