"""Preprocessing: coil combination, eddy-current correction, alignment, outliers, averaging, water."""

import numpy as np
import pytest

from mrs.fit.toy import TYPICAL_MM, synth_fid, toy_basis, toy_coil_transients
from mrs.preproc import average, coils, eddy, water
from mrs.preproc.align import Aligner, align_all
from mrs.preproc.outliers import OutlierDetector, TransientMetrics

CF = 123.25
DWELL = 1 / 4000
N = 2048
T = np.arange(N) * DWELL


@pytest.fixture(scope="module")
def basis():
    return toy_basis(CF, DWELL, N, names=["NAA", "Cr", "PCr", "GPC", "PCh", "mI", "Glu", "Gln"])


@pytest.fixture(scope="module")
def clean(basis):
    return synth_fid(basis, TYPICAL_MM, lorentz_hz=3.0, gauss_hz=4.0)


def _naa_snr(fid: np.ndarray, noise_sd_time: float) -> float:
    return float(np.fft.fft(fid).real.max() / (noise_sd_time * np.sqrt(N)))


def test_svd_combination_with_prewhitening_approaches_optimal_snr(clean):
    rng = np.random.default_rng(1)
    n_coils = 8
    sens = rng.uniform(0.2, 1.0, n_coils) * np.exp(1j * rng.uniform(-np.pi, np.pi, n_coils))
    # correlated noise with unequal coil noise levels
    mix = np.eye(n_coils) + 0.3 * rng.standard_normal((n_coils, n_coils))
    noise = mix @ (rng.standard_normal((n_coils, N)) + 1j * rng.standard_normal((n_coils, N)))
    data = sens[:, None] * clean[None, :] * 0.05 + noise
    noise_scan = mix @ (rng.standard_normal((n_coils, 4096)) + 1j * rng.standard_normal((n_coils, 4096)))
    cov = coils.noise_covariance(noise_scan)
    w = coils.svd_weights(data, coils.whitening_matrix(cov))
    combined = coils.combine(data, w)
    # optimal SNR combination: w_opt ~ cov^-1 s; compare signal-to-noise of the combinations
    w_opt = np.linalg.solve(cov, sens).conj()

    def snr(weights):
        sig = abs(weights @ sens)
        nse = np.sqrt(np.real(weights @ cov @ weights.conj()))
        return sig / nse

    assert snr(w) >= 0.9 * snr(w_opt)
    # phased: the combined FID starts real and positive
    assert abs(np.angle(combined[0])) < 1e-6


def test_whitening_matrix_whitens():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, 4)) + 1j * rng.standard_normal((4, 4))
    cov = a @ a.conj().T + np.eye(4)
    w = coils.whitening_matrix(cov)
    assert np.allclose(w @ cov @ w.conj().T, np.eye(4), atol=1e-6)


def test_klose_correction_removes_eddy_phase_but_not_frequency(clean):
    eddy_phase = 0.6 * np.exp(-T / 0.02)  # decaying eddy-current phase
    water_fid = 1000 * np.exp(2j * np.pi * 2.0 * T - np.pi * 5 * T + 1j * eddy_phase)
    ph = eddy.eddy_phase(water_fid)
    corrected = eddy.apply_eddy(clean * np.exp(1j * eddy_phase), ph)
    # up to a constant phase and the linear (frequency) term kept out of the correction
    ratio = corrected[:400] / clean[:400]
    resid = np.unwrap(np.angle(ratio))
    fit = np.polyfit(T[:400], resid, 1)
    assert np.max(np.abs(resid - np.polyval(fit, T[:400]))) < 0.02
    assert abs(fit[0]) < 2 * np.pi * 0.5  # the 2 Hz water offset was not imposed on the metabolites


def test_alignment_recovers_known_shifts_at_low_snr(clean):
    rng = np.random.default_rng(3)
    aligner = Aligner(N, DWELL, CF)
    shifts = rng.uniform(-6, 6, 32)
    phases = rng.uniform(-0.5, 0.5, 32)
    noise_sd = float(np.fft.fft(clean).real.max() / (10.0 * np.sqrt(N)))  # single-transient NAA SNR 10
    fids = np.array([clean * np.exp(2j * np.pi * s * T + 1j * p)
                     + noise_sd * (rng.standard_normal(N) + 1j * rng.standard_normal(N))
                     for s, p in zip(shifts, phases, strict=True)])
    _, fr, ph = align_all(fids, aligner, iterations=2)
    # the reference is the mean: compare offsets relative to their mean
    err = (fr - fr.mean()) - (shifts - shifts.mean())
    assert np.sqrt(np.mean(err**2)) < 0.4
    err_ph = np.angle(np.exp(1j * ((ph - ph.mean()) - (phases - phases.mean()))))
    assert np.sqrt(np.mean(err_ph**2)) < 0.15


def test_alignment_window_excludes_a_large_unshifted_peak():
    """Built to fail if the ppm window were ignored: a huge aligned lipid at 1.3 ppm plus a small
    shifted NAA/Cr pattern; only the window restricted to 1.8-4.2 ppm finds the shift."""
    lipid = 20 * np.exp(2j * np.pi * (1.0 - 4.65) * CF * T - np.pi * 8 * T)
    mets = np.exp(2j * np.pi * (2.01 - 4.65) * CF * T - np.pi * 4 * T) \
        + np.exp(2j * np.pi * (3.03 - 4.65) * CF * T - np.pi * 4 * T)
    ref = lipid + mets
    moved = lipid + mets * np.exp(2j * np.pi * 5.0 * T)
    inside = Aligner(N, DWELL, CF, window_ppm=(1.8, 4.2)).register(moved, ref)
    everywhere = Aligner(N, DWELL, CF, window_ppm=(0.5, 4.2)).register(moved, ref)
    assert inside.freq_hz == pytest.approx(5.0, abs=0.2)
    assert abs(everywhere.freq_hz) < 1.0


def test_outlier_detector_flags_corrupted_transients_with_reasons():
    rng = np.random.default_rng(4)
    det = OutlierDetector()
    reasons = []
    for i in range(60):
        m = TransientMetrics(freq_hz=0.05 * i + rng.normal(0, 0.2), scale=1 + rng.normal(0, 0.03), scale_snr=50,
                             residual_ratio=1 + rng.normal(0, 0.05), lipid_ratio=1 + rng.normal(0, 0.05))
        if i == 20:
            m = TransientMetrics(m.freq_hz, 0.9, 50, 4.0, 1.5)   # motion: spectrum changed
        if i == 30:
            m = TransientMetrics(m.freq_hz, 1.0, 50, 2.0, 9.0)   # lipid contamination
        if i == 40:
            m = TransientMetrics(m.freq_hz + 12.0, 1.0, 50, 1.0, 1.0)  # frequency jump
        if i == 50:
            m = TransientMetrics(m.freq_hz, 0.2, 50, 1.1, 1.0)   # signal dropped
        reasons.append(det.assess(m))
    flagged = {i: r for i, r in enumerate(reasons) if r}
    assert flagged == {20: "motion", 30: "lipid", 40: "frequency_jump", 50: "low_signal"}


def test_sustained_frequency_change_is_not_rejected_forever():
    det = OutlierDetector()
    out = [det.assess(TransientMetrics(0.0 if i < 20 else 10.0, 1.0, 50, 1.0, 1.0)) for i in range(40)]
    assert out[20] == "frequency_jump"
    assert all(r is None for r in out[30:])


def test_block_windows():
    assert average.window_starts(64, 32) == [0, 32]
    assert average.window_starts(64, 32, 16) == [0, 16, 32]
    assert average.window_starts(10, 32) == []
    assert average.block_of(40, 32) == 1
    avg, n = average.average(np.ones((4, 8)), np.array([1, 0, 1, 1], bool))
    assert n == 3 and np.allclose(avg, 1)


def test_hlsvd_removes_residual_water_and_keeps_metabolites(clean):
    rng = np.random.default_rng(5)
    res_water = 300 * np.exp(2j * np.pi * 3.0 * T - np.pi * 12 * T)
    noisy = clean + 0.5 * (rng.standard_normal(N) + 1j * rng.standard_normal(N))
    assert water.water_dominates(noisy + res_water, DWELL, CF)
    cleaned, removed = water.remove_water(noisy + res_water, DWELL, CF)
    assert removed >= 1
    ppm = 4.65 + np.fft.fftfreq(N, DWELL) / CF
    band = (ppm > 4.4) & (ppm < 4.9)
    assert np.abs(np.fft.fft(cleaned))[band].max() < 0.1 * np.abs(np.fft.fft(res_water))[band].max()
    naa = (ppm > 1.95) & (ppm < 2.07)
    assert np.fft.fft(cleaned).real[naa].max() == pytest.approx(np.fft.fft(noisy).real[naa].max(), rel=0.05)


def test_toy_coil_transients_shape():
    rng = np.random.default_rng(6)
    x = toy_coil_transients(np.ones(N, complex), 4, 0.1, rng)
    assert x.shape == (4, N) and x.dtype == np.complex64


def test_a_significant_signal_drop_is_rejected_once_the_reference_is_established():
    from mrs.preproc.outliers import OutlierDetector, TransientMetrics

    det = OutlierDetector()
    weak = TransientMetrics(freq_hz=0.0, scale=0.6, scale_snr=50.0, residual_ratio=1.0, lipid_ratio=1.0)
    assert det.assess(weak) is None  # no history yet: the first reference may match poorly
    for _ in range(8):
        assert det.assess(TransientMetrics(0.0, 1.0, 50.0, 1.0, 1.0)) is None
    assert det.assess(weak) == "low_signal"  # 40 % lost, 20 standard errors of the scale
    noisy = TransientMetrics(freq_hz=0.0, scale=0.6, scale_snr=20.0, residual_ratio=1.0, lipid_ratio=1.0)
    assert det.assess(noisy) is None  # 8 standard errors: could be noise
    mild = TransientMetrics(freq_hz=0.0, scale=0.8, scale_snr=200.0, residual_ratio=1.0, lipid_ratio=1.0)
    assert det.assess(mild) is None  # a 20 % change is left to the other tests
