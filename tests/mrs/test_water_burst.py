"""A residual-water burst (poor water suppression for a minute or two) must not be taken for a loss of
signal: before the fix, its tail made clean transients fail the amplitude check, eight rejections in a row
rebuilt the running reference from water-laden transients, and every later block was broad and noisy."""

import dataclasses

import numpy as np

from mrs.pipeline import BlockProcessor
from mrs.results import BlockResult
from protocols.plan import load_plan
from simulator.forward import SessionSimulator


def test_a_water_burst_rejects_nothing_and_leaves_later_blocks_intact():
    base = load_plan("quiet")
    plan = dataclasses.replace(base, duration_min=12.0,
                               simulation={**base.simulation, "residual_water_bursts_per_h": 25.0})
    sim = SessionSimulator(plan, seed=3, coils=4)
    proc = BlockProcessor(sim.header_fields(), None, 32)
    fits, rejected = [], []
    for scan in sim.scans():
        flags = frozenset() if scan.kind == "metabolite" else frozenset({scan.kind})
        for out in proc.add(scan.index, scan.t_s, flags, scan.data):
            if isinstance(out, BlockResult):
                fits.append(out)
            elif out.rejected:
                rejected.append(out.rejected)
    fits += [o for o in proc.flush() if isinstance(o, BlockResult)]
    bursts = sim.truth()["residual_water_bursts"]
    assert bursts and sum(b["duration_min"] for b in bursts) >= 1.0  # the scenario really has a burst
    assert len(rejected) <= 2, rejected
    fwhm = np.array([f.qc.naa_fwhm_hz for f in fits])
    assert fwhm.max() < 1.5 * np.median(fwhm)
    glu = np.array([f.ratios["Glu/tCr"] for f in fits])
    assert np.ptp(glu) / np.median(glu) < 0.5
