"""The per-transient half of the runner: scans, the session's first transients, the stages in order,
and the records (mrs/pipeline/record.py) through which every state change goes, live or replayed."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mrs.pipeline.combine import CombineCoils
from mrs.pipeline.context import ALIGN_WINDOW_PPM, TransientContext
from mrs.pipeline.eddy import EddyCorrection
from mrs.pipeline.record import CacheRecord
from mrs.pipeline.register import Register
from mrs.pipeline.reject import Reject
from mrs.pipeline.water import ResidualWater

FIRST_TRANSIENTS = 8            # buffered to estimate coil weights and the first reference
# Session-level, never tied to the block size, so the per-transient results (and a cache of them)
# are the same for any refit block/window/step.
REFERENCE_TRANSIENTS = 32       # the running reference: mean of this many recent accepted transients
PREPROC_VERSION = 6             # bump whenever the per-transient processing or its records change


@dataclass(frozen=True)
class Processed:
    """One processed metabolite transient, as the block side sees it."""

    seq: int
    t_s: float
    fid: np.ndarray       # combined, eddy-corrected, aligned (the cached complex64, as complex128)
    freq_hz: float
    phase_deg: float
    rejected: str | None
    water_height: float | None = None   # residual water peak before its removal (unscaled FFT); None in older caches


def _plain(v: Any) -> Any:
    """A JSON-ready scalar: the cache stores values as JSON, so live and replay see the same types."""
    if isinstance(v, np.bool_ | bool):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _height(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


class TransientRunner:
    def __init__(self, acq: dict, outliers: dict | None = None) -> None:
        self.ctx = TransientContext.for_acquisition(acq, REFERENCE_TRANSIENTS)
        self.ctx.emit = self._emit
        # `front` turns the coils' data into one FID (and sees scans and the first transients as a stack);
        # `stages` work on that FID.
        self.front = [CombineCoils(), EddyCorrection()]
        self.stages = [ResidualWater(), Register(), Reject(self.ctx.grid, self.ctx.aligner, **(outliers or {}))]
        # where each processed transient goes at once (the block windows), and what that gives back
        self.consumer: Callable[[Processed], list] = lambda item: [item]
        self.sink: Callable[[CacheRecord], None] | None = None
        self.sink_error: str | None = None
        self._pending: list[tuple[int, float, np.ndarray]] = []

    def key(self) -> dict:
        """Everything the per-transient results depend on besides the data (block settings do not)."""
        g = self.ctx.grid
        return {"version": PREPROC_VERSION, "points": g.n, "dwell_time_s": g.dwell_s, "cf_mhz": g.cf_mhz,
                "centre_ppm": g.centre_ppm, "first_transients": FIRST_TRANSIENTS,
                "reference_transients": REFERENCE_TRANSIENTS, "align_window_ppm": list(ALIGN_WINDOW_PPM),
                "stages": {s.name: dict(s.settings) for s in self.front + self.stages}}

    # ------------------------------------------------------------------ live
    def add(self, seq: int, t_s: float, flags: frozenset[str], data: np.ndarray) -> list:
        x = np.asarray(data)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.ctx.grid.n:
            raise ValueError(f"transient shape {np.shape(data)} is not (coils, {self.ctx.grid.n})")
        x = x.astype(complex)
        if not np.all(np.isfinite(x)):
            raise ValueError("transient holds NaN or infinity")
        if "dummy" in flags:
            return []
        if "noise" in flags or "water_ref" in flags:
            self._scan("noise" if "noise" in flags else "water_ref", seq, t_s, x)
            return []
        if self.ctx.weights is None or not self.ctx.reference.ready:
            self._pending.append((seq, t_s, x))
            # Not min(FIRST_TRANSIENTS, block): the weights and first reference must not depend on the
            # block size. (A block under 8 then waits for the 8th transient for its first fit.)
            return self.start() if len(self._pending) >= FIRST_TRANSIENTS else []
        for stage in self.front:
            x, _ = stage.process(x, self.ctx)
        self._state_if_changed()
        return self._process(seq, t_s, x)

    def start(self) -> list:
        """The buffered first transients: coil weights and the first reference from all of them."""
        pending, self._pending = self._pending, []
        if not pending:
            return []
        stack = np.stack([p[2] for p in pending])
        for stage in self.front:
            stack = stage.prime(stack, self.ctx)
        self._state_if_changed()
        for stage in self.stages:
            stage.prime(stack, self.ctx)
        out: list = []
        for (seq, t_s, _), fid in zip(pending, stack, strict=True):
            out += self._process(seq, t_s, fid)  # each into the windows before the next: as a cache replay does
        return out

    def error(self, seq: int, t_s: float, message: str) -> None:
        self._sink(CacheRecord("error", int(seq), float(t_s), values={"rejected": message}))

    def _scan(self, kind: str, seq: int, t_s: float, x: np.ndarray) -> None:
        for stage in self.front:
            x = stage.scan(kind, x, self.ctx)
            if x is None:
                return
        self._state_if_changed()
        if kind == "water_ref":
            self._emit(CacheRecord("water", seq, t_s, arrays={"fid": x}))

    def _process(self, seq: int, t_s: float, fid: np.ndarray) -> list:
        ctx = self.ctx
        ctx.estimates, ctx.unaligned = {}, None
        try:
            for stage in self.stages:
                fid, estimates = stage.process(fid, ctx)
                ctx.estimates.update(estimates)
            # The blocks average the complex64-rounded FID, what the cache stores, so blocks from raw data
            # and from the cache are identical (rounding: ~1e-7 relative).
            rec = CacheRecord("transient", seq, t_s, values={k: _plain(v) for k, v in ctx.estimates.items()},
                              arrays={"fid": fid.astype(np.complex64)})
            self._emit(rec)
            for stage in self.stages:
                stage.after(ctx)
        finally:
            ctx.unaligned = None  # live only: a later replayed record must not see it
        return self.consumer(self._processed(rec))

    def _state_if_changed(self) -> None:
        if self.ctx.new_state:
            arrays: dict[str, np.ndarray] = {}
            for stage in self.front + self.stages:
                arrays.update(stage.state(self.ctx))
            self._emit(CacheRecord("state", arrays=arrays))
            self.ctx.new_state = False

    # ------------------------------------------------------------------ records
    def _emit(self, rec: CacheRecord) -> None:
        self._sink(rec)
        self._apply(rec)

    def _apply(self, rec: CacheRecord) -> None:
        for stage in self.front + self.stages:
            stage.apply(rec, self.ctx)

    def _sink(self, rec: CacheRecord) -> None:
        if self.sink is not None:
            try:
                self.sink(rec)
            except Exception as exc:  # a failing consumer must not corrupt the processing: drop it
                self.sink = None
                self.sink_error = f"cache sink failed: {exc}"

    def replay(self, rec: CacheRecord) -> list:
        """A stored record, in the order it was made: the state it describes, and for a transient what
        the consumer gives for it (an "error" record is the caller's)."""
        if rec.kind not in ("state", "water", "reference", "transient"):
            raise ValueError(f"unknown cache record kind {rec.kind!r}")
        if rec.kind == "transient":
            fid = rec.fid
            if fid is None or np.shape(fid) != (self.ctx.grid.n,):
                raise ValueError(f"cached FID shape {np.shape(fid)} is not ({self.ctx.grid.n},)")
        self._apply(rec)
        return self.consumer(self._processed(rec)) if rec.kind == "transient" else []

    @staticmethod
    def _processed(rec: CacheRecord) -> Processed:
        return Processed(int(rec.seq), float(rec.t_s), np.asarray(rec.fid, np.complex64).astype(complex),
                         float(rec.value("freq_hz")), float(rec.value("phase_deg")), rec.rejected,
                         _height(rec.value("water_height")))
