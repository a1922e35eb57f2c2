"""Alignment follows a steady drift however far it goes (gradient-heated 4 Hz/min, 40+ Hz in 12 minutes):
the search window moves with the recent shifts, because the reference is built from aligned transients
and never moves itself. Built to fail if the search stays centred on the reference."""

import numpy as np

from mrs.pipeline import BlockProcessor
from mrs.results import TransientRow
from protocols.plan import load_plan
from simulator.forward import SessionSimulator


def run(n_metabolite: int, centre_tracking: bool, monkeypatch) -> tuple[np.ndarray, np.ndarray, int]:
    if not centre_tracking:
        from mrs.preproc.align import Aligner

        original = Aligner.register
        monkeypatch.setattr(Aligner, "register", lambda self, fid, ref, remove_smooth=False, center_hz=0.0:
                            original(self, fid, ref, remove_smooth))
    sim = SessionSimulator(load_plan("drift"), seed=4, coils=4)
    proc = BlockProcessor(sim.header_fields(), None, 32)
    est, n = {}, 0
    for scan in sim.scans():
        flags = frozenset() if scan.kind == "metabolite" else frozenset({scan.kind})
        for out in proc.add(scan.index, scan.t_s, flags, scan.data):
            if isinstance(out, TransientRow) and out.rejected is None:
                est[out.seq] = out.freq_hz
        n += scan.kind == "metabolite"
        if n >= n_metabolite:
            break
    truth = sim.truth(n_scans=scan.index + 1)["transients"]
    true_f = {r["scan"]: r["freq_hz"] for r in truth}
    seqs = sorted(s for s in est if s in true_f)
    e = np.array([est[s] for s in seqs])
    t = np.array([true_f[s] for s in seqs])
    return e, t, n_metabolite - len(seqs)


def test_alignment_follows_a_70_hz_drift(monkeypatch):
    # 560 transients: 70+ Hz, so metabolite lines also cross where water sat (the water band moves too)
    e, t, rejected = run(560, True, monkeypatch)
    assert np.ptp(t) > 70  # the drift really leaves the +-30 Hz search window
    err = e - t
    err -= np.median(err)
    assert np.sqrt(np.mean(err**2)) < 1.5 and rejected < 0.05 * 560


def test_without_tracking_the_same_drift_is_lost(monkeypatch):
    e, t, rejected = run(360, False, monkeypatch)
    err = e - t
    err -= np.median(err)
    assert np.sqrt(np.mean(err**2)) > 3 or rejected > 0.1 * 360
