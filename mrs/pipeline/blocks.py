"""The per-block half of the runner: windows over the processed transients, the block stages, the
session reference and its revisions, failed blocks, alarms, and timing.

Session reference (`reference_blocks` K > 0): the lineshape details that belong to the session, not to
a block (each macromolecule's own width and position, the singlets' T2 offsets; `LCFitter.session_mask`),
are taken once from the first K blocks (the median of their own fits) and then held for every block. A
block fit then frees only what moves (phases, shifts, group linewidths, amplitudes, baseline): on
simulated ketamine sessions this halves the block-to-block scatter of Glu/tCr at the same bias. The
first K blocks are published as "provisional"; once the reference is fixed they are refitted with it
and published again (`revision` 1), so every block of the session ends up fitted with the same reference.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter, deque
from typing import Any

import numpy as np

from mrs.basis import Basis
from mrs.pipeline.average import Average, rejection_counts
from mrs.pipeline.context import Grid, TransientContext
from mrs.pipeline.fit import Fit
from mrs.pipeline.quality import Quality
from mrs.pipeline.scale import Scale
from mrs.pipeline.stage import BlockFailed
from mrs.pipeline.transients import Processed
from mrs.pipeline.water_removal import WaterRemoval
from mrs.qc import evaluate_alarms
from mrs.results import BlockQC, BlockResult, TransientRow, _num

_RESULT_FIELDS = {f.name for f in dataclasses.fields(BlockResult)} - {"qc", "block"}
_QC_FIELDS = {f.name for f in dataclasses.fields(BlockQC)}


class BlockContext:
    """What the block stages read: the grid, the fitter, the session's water reference and shifts,
    the session reference, and the current window."""

    def __init__(self, grid: Grid, acq: dict, basis: Basis | None, window_ppm: tuple[float, float],
                 tctx: TransientContext, reference_blocks: int) -> None:
        self.grid, self.acq, self.window_ppm, self._tctx = grid, acq, window_ppm, tctx
        self.planned_window_ppm = window_ppm
        self._basis = basis
        self._fitter = None
        # fitters with stiffer baselines whose fits are averaged with the fitter's (no session reference)
        self.stiffer_fitters: list = []
        # the fits feed a dynamic refit (BlockRunner.records): one model for every block, so no averaging
        # (its cost test compares the 1 ppm fitter's refit with the block's own fit)
        self.one_model = False
        self.fitter_error: str | None = None
        self.reference_blocks = reference_blocks
        self.session_x: np.ndarray | None = None
        self.x_prev: np.ndarray | None = None
        self.items: list[Processed] = []
        self.fitted: tuple[np.ndarray, Any] | None = None   # (the FID fitted, FitResult) of the current block

    @property
    def fitter(self):
        """The LCFitter (built on first use; None when the basis cannot be made)."""
        if self._fitter is None and self.fitter_error is None:
            try:
                from mrs.fit import FitSettings, LCFitter

                if self._basis is None:
                    from mrs.basis_sim import basis_for_acquisition

                    self._basis = basis_for_acquisition(self.acq)
                g = self.grid
                # A session (with its reference) is fitted without the free lineshape kernel: on the
                # simulator's sessions the kernel moved Glu/tCr by +6 to +10 % (docs/fitting.md); files and
                # spectra fitted on their own (`mrsmon fit`) use it.
                settings = FitSettings(window_ppm=self.window_ppm)
                if self.reference_blocks > 0:
                    settings = FitSettings(window_ppm=self.window_ppm, kernel_half_width_ppm=0.0)
                self._fitter = LCFitter(self._basis, g.dwell_s, g.n, g.cf_mhz, g.centre_ppm, settings)
                # ... and, fitted on its own, the mean over baseline stiffnesses (mrs.fit.baseline_average).
                # Not with a session reference: a session's change needs one model, block after block.
                if self.reference_blocks == 0 and settings.baseline == "spline":
                    from mrs.fit.baseline_average import KNOT_SPACINGS_PPM

                    # spacings that round to the same number of knot intervals over this window (a narrow
                    # or narrowed one: 3.7 ppm has 2 for 1.5 and 2 ppm) give the same fit: one of them
                    n_functions = {self._fitter.q.shape[1]}
                    for k in (k for k in KNOT_SPACINGS_PPM if k != settings.baseline_knot_spacing_ppm):
                        f = LCFitter(self._basis, g.dwell_s, g.n, g.cf_mhz, g.centre_ppm,
                                     dataclasses.replace(settings, baseline_knot_spacing_ppm=k))
                        if f.q.shape[1] not in n_functions:
                            n_functions.add(f.q.shape[1])
                            self.stiffer_fitters.append(f)
            except Exception as exc:
                self.fitter_error = f"no usable basis: {exc}"
        return self._fitter

    def end_window_below(self, top_ppm: float) -> None:
        """Residual water was removed from inside the fit window: the window ends at `top_ppm` instead
        (its residue would go into the lines around it). The fitter is built once, so the first block
        that finds it decides for the session."""
        lo, hi = self.window_ppm
        if self._fitter is None and self.fitter_error is None and lo + 1.0 < top_ppm < hi:
            self.window_ppm = (lo, round(top_ppm, 3))

    @property
    def window_narrowed(self) -> tuple[float, float] | None:
        """The fit window when residual water made it end below the planned one, else None."""
        return None if self.window_ppm == self.planned_window_ppm else self.window_ppm

    def water_fid(self) -> np.ndarray | None:
        """The mean of the combined water references (= combining their mean: linear), or None."""
        return np.mean(self._tctx.water, axis=0) if self._tctx.water else None

    @property
    def freq_t(self) -> list[tuple[float, float]]:
        return self._tctx.freq_t

    @property
    def coils_excluded(self) -> np.ndarray:
        return self._tctx.coils_excluded


class BlockRunner:
    def __init__(self, ctx: BlockContext, block: int, step: int, alarms: dict | None) -> None:
        self.ctx = ctx
        self.stages = [Average(), WaterRemoval(), Fit(), Scale(), Quality()]
        self.block, self.step = block, step
        self.alarms = dict(alarms or {})
        self.recent: deque[Processed] = deque(maxlen=block)
        self.count = 0               # processed transients
        self.next_start = 0
        self.covered = 0             # transients included in an emitted window
        self.index = 0
        self.history: list[BlockResult] = []       # every result published, for alarms that compare
        self.seconds: Counter[str] = Counter()     # time per stage over the session
        self.records: list | None = None           # (block, FID fitted, FitResult) when set to a list
        self._provisional: list[tuple[int, list[Processed]]] = []
        self._provisional_x: list[np.ndarray] = []
        self.reference_due = False

    # ------------------------------------------------------------------ windows
    def push(self, item: Processed) -> list:
        """Count a processed transient into the windows; fit a window when it is complete."""
        self.recent.append(item)
        self.count += 1
        out: list = [TransientRow(item.seq, item.t_s, _num(item.freq_hz, 4), _num(item.phase_deg, 3),
                                  item.rejected, (self.count - 1) // self.step)]
        if self.count - self.next_start >= self.block:
            out += self._window(list(self.recent))
            self.covered = self.count
            self.next_start += self.step
        return out

    def flush(self) -> list:
        """The partial last window (if at least half a block is not yet in one), and the reference."""
        out: list = []
        uncovered = self.count - max(self.covered, self.next_start)
        n_window = self.count - self.next_start
        if uncovered > 0 and n_window >= math.ceil(self.block / 2):
            out += self._window(list(self.recent)[-n_window:])
            self.covered = self.count
        if self.reference_due or (self.ctx.session_x is None and len(self._provisional) >= 2):
            out += self.fix_reference()
        return out

    def _window(self, items: list[Processed]) -> list[BlockResult]:
        index, self.index = self.index, self.index + 1
        out = [self.fit(index, items)]
        if self.ctx.reference_blocks and self.ctx.session_x is None:
            self._provisional.append((index, items))
            if self.count >= self.ctx.reference_blocks * self.block:
                self.reference_due = True  # fitted with the next transient or at the end
        return out

    # ------------------------------------------------------------------ one block
    def fit(self, index: int, items: list[Processed], revision: int = 0) -> BlockResult:
        """The block stages on one window; any failure becomes a failed result with its reason."""
        ctx = self.ctx
        ctx.items, ctx.fitted = items, None
        fields: dict[str, Any] = {}
        try:
            data: Any = items
            for stage in self.stages:
                t0 = time.perf_counter()
                data, estimates = stage.process(data, ctx)
                self.seconds[stage.name] += time.perf_counter() - t0
                fields.update(estimates)
            result = self._result(index, items, fields)
        except BlockFailed as exc:
            result = self.failed(index, items, str(exc))
        except Exception as exc:
            result = self.failed(index, items, f"block processing failed: {exc}")
        if ctx.fitted is not None:
            avg, res = ctx.fitted
            if result.qc.reference == "provisional" and res.success:
                self._provisional_x.append(np.array(res.x, float))
            if self.records is not None:
                self.records.append((index, avg, res))
        return self._publish(result.replace(revision=revision))

    def _result(self, index: int, items: list[Processed], fields: dict[str, Any]) -> BlockResult:
        unknown = set(fields) - _RESULT_FIELDS - _QC_FIELDS
        if unknown:
            raise TypeError(f"stage estimates {sorted(unknown)} are not BlockResult or BlockQC fields")
        qc = BlockQC(**{k: v for k, v in fields.items() if k in _QC_FIELDS})
        t_mid, t0, t1 = self._times(items)
        return BlockResult(block=index, t_s=_num(t_mid), t_start_s=_num(t0), t_end_s=_num(t1), qc=qc,
                           **{k: v for k, v in fields.items() if k in _RESULT_FIELDS})

    def failed(self, index: int, items: list[Processed], message: str) -> BlockResult:
        t_mid, t0, t1 = self._times(items)
        rejected = rejection_counts(items)
        return BlockResult(block=index, t_s=_num(t_mid), t_start_s=_num(t0), t_end_s=_num(t1),
                           n_transients=sum(1 for i in items if i.rejected is None),
                           n_rejected=sum(rejected.values()), rejected=rejected,
                           qc=BlockQC(fit_status="failed", message=message))

    def _publish(self, result: BlockResult) -> BlockResult:
        """The rule book's alarms, evaluated once, here, on the finished result."""
        alarms = evaluate_alarms(result, self.alarms, self.history)
        result = result.replace(qc=dataclasses.replace(result.qc, alarms=alarms))
        self.history.append(result)
        return result

    def _times(self, items: list[Processed]) -> tuple[float, float, float]:
        if not items:
            return (float("nan"),) * 3
        t0 = min(i.t_s for i in items)
        t1 = max(i.t_s for i in items) + self.ctx.grid.tr_s
        return (t0 + t1) / 2, t0, t1

    # ------------------------------------------------------------------ session reference
    def fix_reference(self) -> list[BlockResult]:
        """The median of the provisional blocks' own fits becomes the session reference, and those
        blocks are refitted with it. (The median, not a fit of their average: a block or two disturbed
        by motion or lipid does not move it; on a simulated restless session a fit of the average
        misled every later block.) Never raises: without a usable reference blocks go on on their own."""
        self.reference_due = False
        try:
            provisional, self._provisional = self._provisional, []
            fits, self._provisional_x = self._provisional_x, []
            if self.ctx.fitter is None or not fits:
                self.ctx.reference_blocks = 0
                return []
            self.ctx.session_x = np.median(np.array(fits), axis=0)
            return [self.fit(index, items, revision=1) for index, items in provisional]
        except Exception:
            self.ctx.reference_blocks = 0
            return []
