"""The block pipeline of one session, for the agent, `mrsmon fit`, refit and replay.

    proc = BlockProcessor(acq, basis, block_transients, window_ppm=(0.2, 4.2), alarms=None, step=None,
                          reference_blocks=0, outliers=None)
    outputs = proc.add(seq, t_s, flags, data)   # data (coils, points) complex -> [TransientRow | BlockResult]
    outputs += proc.flush()                     # end of stream

Per metabolite transient, the stages of mrs/pipeline/transients.py: combine coils, eddy correction,
residual water, registration, rejection. Per block (non-overlapping, or sliding windows with `step`),
those of mrs/pipeline/blocks.py: average, water removal, fit, scale, quality; then the alarms of the
rule book (mrs/qc.py, thresholds = the plan's `alarms`). `outliers` are the rejection settings (the
plan's `[outliers]`). `add` and `flush` never raise: a failing transient is reported unusable, a
failing block is published as failed.

Every per-transient result and state change is a `CacheRecord`; the state changes only by applying
records. A cache of them feeds the same code path back (any block/window/step: the per-transient half
depends only on session-level settings, `preprocessing_key()`):

    proc.prepared_sink = records.append         # every record, in order
    proc.add_prepared(rec) ...                   # the same outputs as `add` gave, without the work
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mrs.basis import Basis
from mrs.pipeline.blocks import BlockContext, BlockRunner
from mrs.pipeline.record import CacheRecord
from mrs.pipeline.transients import TransientRunner
from mrs.results import BlockResult, TransientRow

Output = TransientRow | BlockResult


def _unusable(seq: int, t_s: float, message: str | None) -> TransientRow:
    """The row of a transient that could not be processed."""
    return TransientRow(int(seq), float(t_s), None, None, message, None)


class BlockProcessor:
    def __init__(self, acq: dict, basis: Basis | None, block_transients: int,
                 window_ppm: tuple[float, float] = (0.2, 4.2), alarms: dict | None = None,
                 step: int | None = None, reference_blocks: int = 0, outliers: dict | None = None) -> None:
        self.acq = dict(acq)
        block = max(1, int(block_transients))
        step = min(max(1, int(step)), block) if step else block
        self.transients = TransientRunner(self.acq, outliers)
        ctx = BlockContext(self.transients.ctx.grid, self.acq, basis,
                           (float(min(window_ppm)), float(max(window_ppm))), self.transients.ctx,
                           max(0, int(reference_blocks)))
        self.blocks = BlockRunner(ctx, block, step, alarms)
        self.transients.consumer = self.blocks.push

    # ------------------------------------------------------------------ public API
    def add(self, seq: int, t_s: float, flags: frozenset[str] | set[str], data: np.ndarray) -> list[Output]:
        return self._guarded(seq, t_s, lambda: self.transients.add(int(seq), float(t_s), frozenset(flags or ()),
                                                                   data))

    def add_prepared(self, rec: CacheRecord) -> list[Output]:
        """Feed one record (from `prepared_sink`, in the same order): the same outputs as `add` gave for
        the raw data. The state is restored too, so raw `add` can continue afterwards (resume)."""
        if rec.kind == "error":
            return self._guarded(rec.seq, rec.t_s, lambda: []) + [_unusable(rec.seq, rec.t_s, rec.rejected)]
        return self._guarded(rec.seq, rec.t_s, lambda: self.transients.replay(rec))

    def flush(self) -> list[Output]:
        out: list[Output] = []
        try:
            out += self.transients.start()
            out += self.blocks.flush()
        except Exception as exc:
            out.append(self.blocks.failed(self.blocks.index, [], f"flush failed: {exc}"))
        return out

    def _guarded(self, seq: int, t_s: float, step: Callable[[], list]) -> list[Output]:
        """One transient's `step`. A session reference that became due is fixed first (after the block that
        completed it was published, so not in its latency). Never raises into the agent: a failing step
        reports the transient as unusable."""
        out: list[Output] = self.blocks.fix_reference() if self.blocks.reference_due else []
        try:
            return out + step()
        except Exception as exc:
            self.transients.error(seq, t_s, f"error: {exc}")
            return out + [_unusable(seq, t_s, f"error: {exc}")]

    def preprocessing_key(self) -> dict:
        return self.transients.key()

    @property
    def prepared_sink(self) -> Callable[[CacheRecord], None] | None:
        return self.transients.sink

    @prepared_sink.setter
    def prepared_sink(self, sink: Callable[[CacheRecord], None] | None) -> None:
        self.transients.sink = sink

    @property
    def sink_error(self) -> str | None:
        return self.transients.sink_error

    @property
    def records(self) -> list | None:
        """(block, FID fitted, FitResult) of every fit, when set to a list (the dynamic refit)."""
        return self.blocks.records

    @records.setter
    def records(self, value: list | None) -> None:
        self.blocks.records = value
        self.blocks.ctx.one_model = value is not None

    @property
    def fitter(self):
        return self.blocks.ctx.fitter

    @property
    def reference_blocks(self) -> int:
        return self.blocks.ctx.reference_blocks

    @property
    def coils_excluded(self) -> np.ndarray:
        return self.transients.ctx.coils_excluded

    @property
    def stage_seconds(self) -> dict[str, float]:
        """Time spent in each block stage over the session so far."""
        return dict(self.blocks.seconds)

    def warm_up(self) -> None:
        """Build the fitter and fit one synthetic spectrum with it, so that the session's first block does
        not pay the first calls of every code path (its fit took 45 ms instead of ~10 live). Nothing of
        the session's state changes."""
        fitter = self.fitter
        if fitter is None:
            return
        fid = (fitter.fids * fitter.scale[:, None]).sum(axis=0) * np.exp(-np.pi * 5.0 * fitter.t)
        # every fitter a block will use (a plan without a reference fits with each baseline stiffness)
        for f in (fitter, *([] if self.blocks.ctx.one_model else self.blocks.ctx.stiffer_fitters)):
            try:
                f.fit(fid)
            except Exception:  # a warm-up only: the first block will say what is wrong
                pass
