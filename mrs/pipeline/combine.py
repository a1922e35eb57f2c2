"""Coil combination: prewhitened SVD weights (Rodgers & Robson 2010), fixed once per session, from the
water reference when it comes first, else from the mean of the first transients; noise scans give the
prewhitening. A receive channel that turns noisy mid-session is taken out of the combination."""

from __future__ import annotations

from collections import deque

import numpy as np

from mrs.pipeline.record import CacheRecord
from mrs.pipeline.stage import TransientStage
from mrs.preproc import coils as _coils

NOISY_COIL_FACTOR = 9.0         # a coil whose noise variance rose 9x (noise x3) leaves the combination
COIL_WATCH_TRANSIENTS = 8       # transients whose median coil noise is compared with the start


class CombineCoils(TransientStage):
    name = "combine"

    def __init__(self) -> None:
        self._noise: list[np.ndarray] = []
        self._water_raw: list[np.ndarray] = []
        self._whitening: np.ndarray | None = None
        self._noise_hist: deque[np.ndarray] = deque(maxlen=COIL_WATCH_TRANSIENTS)
        self._noise0: np.ndarray | None = None

    def scan(self, kind: str, data: np.ndarray, ctx) -> np.ndarray | None:
        if kind == "noise":
            self._noise.append(data)
            return None
        self._water_raw.append(data)
        if ctx.weights is None:
            self._set_weights(data, ctx)
        return _coils.combine(data, ctx.weights)

    def prime(self, stack: np.ndarray, ctx) -> np.ndarray:
        if ctx.weights is None:
            self._set_weights(stack.mean(0) if len(stack) > 1 else stack[0], ctx)
        return np.array([_coils.combine(x, ctx.weights) for x in stack])

    def process(self, data: np.ndarray, ctx) -> tuple[np.ndarray, dict]:
        self._watch(data, ctx)
        return _coils.combine(data, ctx.weights), {}

    def state(self, ctx) -> dict[str, np.ndarray]:
        return {"weights": ctx.weights.copy()}

    def apply(self, rec: CacheRecord, ctx) -> None:
        if rec.kind == "state":
            ctx.weights = np.asarray(rec.arrays["weights"], complex)
            ctx.coils_excluded = ctx.weights == 0
        elif rec.kind == "water":
            ctx.water.append(np.asarray(rec.fid, complex))

    def _set_weights(self, reference: np.ndarray, ctx) -> None:
        cov = _coils.noise_covariance(np.stack(self._noise)) if self._noise else _coils.noise_from_tail(reference)
        self._whitening = _coils.whitening_matrix(cov)
        ctx.weights = _coils.svd_weights(reference, self._whitening)
        ctx.coils_excluded = np.zeros(ctx.weights.shape[0], bool)
        ctx.new_state = True

    def _watch(self, x: np.ndarray, ctx) -> None:
        """A channel that turns noisy would, with the session's fixed weights, multiply the combined
        noise (one of 32 coils at 25x its noise: about 4x). Each coil's noise is followed in the FID
        tail; once the median of the last transients is NOISY_COIL_FACTOR times its start value, the
        coil's weight is set to zero and the others rescaled so the combined signal keeps its
        amplitude (water scaling and the alignment reference stay valid). A dead channel adds no
        noise and is left in. (Not after a resume from the cache: it has no whitening.)"""
        if x.shape[0] < 2 or self._whitening is None:
            return
        tail = x[:, -max(16, ctx.grid.n // 8):]
        self._noise_hist.append(np.mean(np.abs(tail - tail.mean(axis=1, keepdims=True)) ** 2, axis=1))
        if len(self._noise_hist) < self._noise_hist.maxlen:
            return
        now = np.median(np.array(self._noise_hist), axis=0)
        if self._noise0 is None:
            self._noise0 = now
            self._noise_hist.clear()
            return
        bad = (now > NOISY_COIL_FACTOR * np.maximum(self._noise0, 1e-300)) & ~ctx.coils_excluded
        if bad.any():
            self._exclude(bad, ctx)

    def _exclude(self, bad: np.ndarray, ctx) -> None:
        w = ctx.weights
        w_inv = np.linalg.inv(self._whitening)
        sens = w_inv @ (w @ w_inv).conj()  # coil signal sensitivities (up to a constant): W^-1 u
        kept = np.where(bad, 0.0, w)
        denom = kept @ sens
        if abs(denom) > 0:
            kept = kept * ((w @ sens) / denom)
        ctx.weights = kept
        ctx.coils_excluded = ctx.coils_excluded | bad
        ctx.new_state = True
