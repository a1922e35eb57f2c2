"""What the stages of one session share: the acquisition grid and the per-transient state.

Stage-private state stays in the stage; what several stages read lives here. Only `Stage.apply`
(with a record) changes it, so a cache replay rebuilds it exactly (mrs/pipeline/record.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mrs.basis import WATER_PPM
from mrs.pipeline.record import CacheRecord
from mrs.pipeline.reference import RunningReference
from mrs.preproc.align import Aligner

ALIGN_WINDOW_PPM = (1.8, 4.2)
RECENT_SHIFTS = 8    # transients whose median shift centres the next registration and water search


@dataclass(frozen=True)
class Grid:
    """The acquisition's time and frequency grid."""

    n: int
    dwell_s: float
    cf_mhz: float
    centre_ppm: float
    tr_s: float

    @classmethod
    def from_acquisition(cls, acq: dict) -> Grid:
        return cls(int(acq["points"]), float(acq["dwell_time_s"]), float(acq["spectrometer_frequency_mhz"]),
                   float(acq.get("centre_ppm", WATER_PPM)), float(acq.get("repetition_time_s") or 0.0))

    def ppm(self) -> np.ndarray:
        """The ppm of each point of the (unshifted) FFT."""
        return self.centre_ppm + np.fft.fftfreq(self.n, self.dwell_s) / self.cf_mhz


@dataclass
class TransientContext:
    grid: Grid
    aligner: Aligner
    reference: RunningReference
    emit: Callable[[CacheRecord], None] = lambda rec: None   # the runner: apply the record, then cache it
    weights: np.ndarray | None = None          # coil combination weights, (coils,)
    coils_excluded: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    eddy: np.ndarray | None = None             # eddy-current phase, (points,)
    water: list[np.ndarray] = field(default_factory=list)      # each water reference, combined
    freq_t: list[tuple[float, float]] = field(default_factory=list)  # (t_s, shift) of every transient
    new_state: bool = False                    # a stage changed what a "state" record carries
    estimates: dict[str, Any] = field(default_factory=dict)    # the current transient's, stage by stage
    unaligned: np.ndarray | None = None        # the current transient before alignment (live only)

    @classmethod
    def for_acquisition(cls, acq: dict, reference_length: int) -> TransientContext:
        grid = Grid.from_acquisition(acq)
        aligner = Aligner(grid.n, grid.dwell_s, grid.cf_mhz, grid.centre_ppm, ALIGN_WINDOW_PPM)
        return cls(grid, aligner, RunningReference(reference_length))

    def recent_shift_hz(self) -> float:
        """Where the recent transients sit: the median of the last shifts (0 at the start)."""
        recent = [f for _, f in self.freq_t[-RECENT_SHIFTS:] if f is not None and np.isfinite(f)]
        return float(np.median(recent)) if recent else 0.0
