"""The fit's baseline (mrs.fit.baseline): the free coarse spline plus penalised detail whose
stiffness the data choose."""

import numpy as np
import pytest

from mrs.fit import FitSettings, LCFitter
from mrs.fit.baseline import penalised_baseline, spline_basis
from mrs.fit.toy import TYPICAL_MM, synth_fid, toy_basis

CF, DWELL, N = 123.25, 1 / 4000, 2048
NO_MM = ["NAA", "Cr", "PCr", "GPC", "PCh", "mI", "Glu", "Gln", "GABA", "GSH"]  # as most bases of other groups


def test_the_coarse_spline_is_free_and_the_detail_is_penalised():
    ppm = np.linspace(0.2, 4.2, 300)
    coarse = spline_basis(ppm, 1.0, 3)
    pb = penalised_baseline(spline_basis(ppm, 1.0, 3, refine=5), coarse)
    assert pb.n == 23 and int(np.sum(pb.roughness == 0)) == coarse.shape[1] == 7
    assert pb.dof(np.inf) == pytest.approx(7.0) and pb.dof(0.0) == pytest.approx(23.0)
    for target in (8.0, 12.5, 20.0):
        assert pb.dof(pb.lambda_for_dof(target)) == pytest.approx(target, abs=1e-6)
    # infinitely stiff: W^(1/2) is the projection out of the coarse spline (the previous fitter's)
    v = np.random.default_rng(0).standard_normal((300, 4))
    w_half = v - pb.q @ (pb.shrink(np.inf)[:, None] * (pb.q.T @ v))
    qc = np.linalg.qr(coarse)[0]
    np.testing.assert_allclose(w_half, v - qc @ (qc.T @ v), atol=1e-9)


def _glu_error_pct(res) -> float:
    q = res.quantities()
    true = TYPICAL_MM["Glu"] / (TYPICAL_MM["Cr"] + TYPICAL_MM["PCr"])
    return 100.0 * (q["Glu"][0] / q["tCr"][0] / true - 1.0)


def _spectrum_with_bump(bump_rel: float, seed: int):
    basis = toy_basis(CF, DWELL, N, names=NO_MM)
    t = np.arange(N) * DWELL
    height = np.abs(np.fft.fft(synth_fid(basis, TYPICAL_MM))).max()
    # a broad bump (Gaussian, FWHM 0.4 ppm) under Glu's 3.75 ppm multiplets
    bump = np.exp(2j * np.pi * (3.7 - 4.65) * CF * t - (np.pi * 0.4 * CF * t) ** 2 / (4 * np.log(2)))
    bump *= bump_rel * height / np.abs(np.fft.fft(bump)).max()
    fid = synth_fid(basis, TYPICAL_MM, noise_sd=height / 60 / np.sqrt(N), rng=np.random.default_rng(seed),
                    baseline=bump)
    return basis, fid


def test_a_bump_the_coarse_spline_cannot_follow_frees_the_detail_and_spares_glu():
    """Knots every 1 ppm gave a broad bump under Glu to Glu (+20 to +40 % here, +45 % on a
    noise-free truth-set spectrum); the data now free the detail and Glu is spared."""
    new, old = [], []
    for seed in range(3):
        basis, fid = _spectrum_with_bump(0.2, seed)
        res = LCFitter(basis, DWELL, N, CF).fit(fid)
        assert res.baseline_dof > 7.5, res.baseline_dof
        new.append(abs(_glu_error_pct(res)))
        old.append(abs(_glu_error_pct(LCFitter(basis, DWELL, N, CF, settings=FitSettings(baseline_refine=1)).fit(fid))))
    assert np.mean(old) > 15.0, old
    assert np.mean(new) < 0.6 * np.mean(old), (new, old)


def test_without_a_bump_the_baseline_stays_stiff():
    for seed in range(3):
        basis, fid = _spectrum_with_bump(0.0, seed)
        res = LCFitter(basis, DWELL, N, CF).fit(fid)
        assert res.baseline_dof == pytest.approx(7.0), res.baseline_dof


def test_a_fixed_stiffness_is_used_as_given():
    basis, fid = _spectrum_with_bump(0.2, 0)
    res = LCFitter(basis, DWELL, N, CF, settings=FitSettings(baseline_dof=12.0)).fit(fid)
    assert res.baseline_dof == pytest.approx(12.0, abs=1e-6)
    assert res.success
