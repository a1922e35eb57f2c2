"""The water-suppression alarm: raised when a block's residual water (qc.residual_water, measured on the
transients before any removal) exceeds the plan's limit; the measure follows the simulator's truth."""

import dataclasses

import numpy as np
import pytest

from mrs.pipeline import BlockProcessor
from mrs.qc import evaluate_alarms
from mrs.results import BlockQC, BlockResult
from protocols.plan import Alarms, load_plan
from simulator.forward import SessionSimulator

LIMITS = vars(Alarms())


def water_alarm(water: float | None, limits=LIMITS):
    result = BlockResult(block=3, qc=BlockQC(residual_water=water, fit_status="ok"))
    return [a for a in evaluate_alarms(result, limits, []) if a.name == "water_suppression"]


def test_above_the_limit_it_is_raised_with_its_numbers():
    alarm = water_alarm(71.3)
    assert len(alarm) == 1 and alarm[0].severity == "amber"
    assert "residual water 71.3x the NAA peak (limit 50)" in alarm[0].reason


def test_within_the_limit_or_unmeasured_nothing_is_raised_and_the_limit_is_the_plans():
    assert water_alarm(49.0) == [] and water_alarm(None) == []
    assert len(water_alarm(20.0, {**LIMITS, "residual_water": 10.0})) == 1


def _session(ratio: float) -> tuple[list[BlockResult], np.ndarray]:
    base = load_plan("quiet")
    plan = dataclasses.replace(base, duration_min=3.0, simulation={
        **base.simulation, "residual_water_ratio": ratio, "residual_water_bursts_per_h": 0.0})
    sim = SessionSimulator(plan, seed=5, coils=2)
    proc = BlockProcessor(sim.header_fields(), None, 32, alarms=LIMITS)
    out = []
    for scan in sim.scans():
        flags = frozenset() if scan.kind == "metabolite" else frozenset({scan.kind})
        out += proc.add(scan.index, scan.t_s, flags, scan.data)
    out += proc.flush()
    blocks = [o for o in out if isinstance(o, BlockResult)]
    return blocks, np.abs(sim.water)[np.array(sim.kinds) == "metabolite"]


@pytest.mark.parametrize("ratio, alarmed", [(3.0, False), (150.0, True)])
def test_the_measure_follows_the_simulated_water_and_raises_the_alarm(ratio, alarmed):
    blocks, true_water = _session(ratio)
    assert blocks and all(b.qc.fit_status == "ok" for b in blocks)
    truth = float(np.median(true_water))  # the simulator's residual water over its NAA height
    for b in blocks:
        assert 0.6 * truth < b.qc.residual_water < 1.3 * truth, (b.qc.residual_water, truth)
        assert ("water_suppression" in b.qc.alarm_names()) == alarmed
