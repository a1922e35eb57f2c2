"""The mirrored-data alarm: a session sent in the conjugate convention is flagged red on its blocks, from
the block average's singlets; the same session sent right is not."""

import numpy as np
import pytest

from mrs.pipeline import BlockProcessor
from mrs.results import BlockResult
from protocols.plan import Alarms, load_plan
from simulator.forward import SessionSimulator


def blocks(conjugate: bool) -> list[BlockResult]:
    plan = load_plan("quick")
    a = plan.acquisition
    acq = {"spectrometer_frequency_mhz": a.spectrometer_frequency_mhz, "dwell_time_s": a.dwell_time_s,
           "points": a.points, "coils": 2, "echo_time_s": a.echo_time_ms / 1e3,
           "repetition_time_s": a.repetition_time_s, "sequence": a.sequence, "nucleus": "1H"}
    proc = BlockProcessor(acq, None, 8, alarms=vars(Alarms()))
    out, n = [], 0
    for s in SessionSimulator(plan, seed=7, coils=2).scans():
        if s.kind != "metabolite":
            continue
        out += proc.add(n + 1, s.t_s, frozenset(), np.conj(s.data) if conjugate else s.data)
        n += 1
        if n == 16:
            break
    return [o for o in out + proc.flush() if isinstance(o, BlockResult)]


@pytest.mark.parametrize("conjugate", [False, True])
def test_conjugated_data_raise_the_red_alarm_and_right_data_do_not(conjugate):
    results = blocks(conjugate)
    assert len(results) == 2
    for r in results:
        assert r.qc.mirrored is conjugate
        raised = [a for a in r.qc.alarms if a.name == "mirrored"]
        if conjugate:
            assert len(raised) == 1 and raised[0].severity == "red" and "conjugate" in raised[0].reason
        else:
            assert raised == [] and r.qc.fit_status == "ok"
