"""A session that starts with residual water dominating (common in real, averaged vendor exports) must not
reject its first transients against a reference that still holds the water they are compared without."""

import numpy as np
from mrd_client import simulated_scans

from mrs.pipeline import BlockProcessor
from mrs.results import BlockResult


def wet(fid: np.ndarray, dwell_s: float, amplitude: float) -> np.ndarray:
    """A broad (16 Hz) residual water line on resonance, as in a poorly suppressed averaged export."""
    t = np.arange(fid.shape[-1]) * dwell_s
    return (fid + amplitude * np.exp(-t / 0.02)).astype(np.complex64)


def test_a_lone_wet_transient_is_kept_not_rejected_as_low_signal():
    plan, scans = simulated_scans(1, coils=2, seed=3)
    a = plan.acquisition
    metab = next(s for s in scans if s.kind == "metab")
    peak = np.abs(np.fft.fft(metab.data[0])).max()
    acq = {"spectrometer_frequency_mhz": a.spectrometer_frequency_mhz, "dwell_time_s": a.dwell_time_s,
           "points": a.points, "coils": 2, "echo_time_s": a.echo_time_ms / 1e3,
           "repetition_time_s": a.repetition_time_s, "sequence": a.sequence, "nucleus": "1H"}
    proc = BlockProcessor(acq, None, 1)
    x = wet(metab.data, a.dwell_time_s, 200 * peak / metab.data.shape[-1])
    out = proc.add(1, 0.0, frozenset(), x) + proc.flush()
    blocks = [o for o in out if isinstance(o, BlockResult)]
    assert blocks and blocks[0].rejected == {} and blocks[0].n_transients == 1, blocks[0]
