"""A small session for store and ingest tests: 2 coils x 32 points, and a transient per seq."""

import numpy as np

START = dict(spectrometer_frequency_mhz=123.25, nucleus="1H", dwell_time_s=2.5e-4, points=32, coils=2,
             echo_time_s=0.03, repetition_time_s=2.0, sequence="PRESS", subject="sim001", session_code="ses-01",
             kit_code="KIT-0001", protocol="quick", start_time_ns=1_000_000_000)


def data(seq: int) -> np.ndarray:
    """The (2, 32) complex64 samples of transient `seq` (the same for the same seq)."""
    rng = np.random.default_rng(seq)
    return (rng.standard_normal((2, 32)) + 1j * rng.standard_normal((2, 32))).astype(np.complex64)
