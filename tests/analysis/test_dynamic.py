"""The dynamic fit on synthetic blocks with a known truth: reduces to block fits, and is more precise."""

from __future__ import annotations

import numpy as np
import pytest

from mrs.dynamic import abrupt_outliers, dynamic_fit, quantities, smooth_parameters
from mrs.fit import FitSettings, LCFitter
from mrs.fit.toy import TYPICAL_MM, synth_fid, toy_basis


@pytest.fixture(scope="module")
def blocks():
    basis = toy_basis()
    # without the free lineshape kernel, as sessions are fitted (mrs.stream): with its ten extra
    # flat directions the stopping tolerance alone moves a held refit by up to 1.2 % (0.2 CRLB)
    fitter = LCFitter(basis, basis.dwell_s, basis.n_points, basis.cf_mhz,
                      settings=FitSettings(kernel_half_width_ppm=0.0))
    rng = np.random.default_rng(5)
    conc = {k: v for k, v in TYPICAL_MM.items() if k in basis.names}
    fids = [synth_fid(basis, conc, lorentz_hz=3.0, gauss_hz=4.0, shift_hz=rng.normal(0, 0.5),
                      phase_rad=rng.normal(0, 0.05), noise_sd=4.0, rng=rng, mm_lorentz_hz=20.0)
            for _ in range(24)]
    fits = [fitter.fit(f) for f in fids]
    return fitter, np.array(fids), fits, conc


def _glu_tcr(names, conc, cov):
    return quantities(names, conc, cov)[1]["Glu/tCr"]


def test_without_smoothing_the_dynamic_fit_is_the_block_fit(blocks):
    fitter, fids, fits, _ = blocks
    res = dynamic_fit(fitter, fids, fits, np.arange(len(fits)) * 64.0, smooth_s=1e-3)
    for b, f in enumerate(fits[:6]):
        value, sd = _glu_tcr(res.names, res.conc[b], res.cov[b])
        # the fitter's soft priors depend a little on its starting point: agreement to well below noise
        assert value == pytest.approx(f.ratios()["Glu/tCr"][0], rel=1e-2)
        assert sd == pytest.approx(f.ratios()["Glu/tCr"][1], rel=0.02)  # n_eff = 1: the block CRLB
    assert np.allclose(res.n_eff, 1.0)


def test_shared_lineshape_is_more_precise_than_block_fits(blocks):
    fitter, fids, fits, conc = blocks
    res = dynamic_fit(fitter, fids, fits, np.arange(len(fits)) * 64.0, smooth_s=np.inf)
    truth = conc["Glu"] / (conc["Cr"] + conc["PCr"])
    block = np.array([f.ratios()["Glu/tCr"][0] for f in fits])
    dyn = np.array([_glu_tcr(res.names, res.conc[b], res.cov[b])[0] for b in range(len(fits))])
    sd_dyn = np.array([_glu_tcr(res.names, res.conc[b], res.cov[b])[1] for b in range(len(fits))])
    sd_block = np.array([f.ratios()["Glu/tCr"][1] for f in fits])
    assert np.std(dyn) < np.std(block)                      # measured scatter across identical blocks
    assert np.sqrt(np.mean((dyn - truth) ** 2)) < np.sqrt(np.mean((block - truth) ** 2))
    assert np.mean(sd_dyn) < np.mean(sd_block)              # joint CRLB below the per-block one
    assert np.mean(sd_dyn) == pytest.approx(np.std(dyn), rel=0.5)  # and it describes the scatter
    assert np.allclose(res.n_eff, len(fits))


def test_smoothing_kernel_weights():
    x = np.array([[0.0, 1.0], [0.0, 3.0], [0.0, np.nan]])
    xs, n_eff = smooth_parameters(x, np.array([0.0, 1.0, 2.0]), np.array([True, True, True]), np.inf)
    assert np.allclose(xs[:, 1], 2.0) and np.allclose(n_eff, 2.0)  # the failed block is ignored


def test_abrupt_linewidth_changes_are_flagged_slow_trends_are_not():
    fwhm = 6.0 + 0.02 * np.arange(30) + np.random.default_rng(1).normal(0, 0.05, 30)  # slow drift
    fwhm[12:14] += 1.2                                                                  # motion
    assert list(np.nonzero(abrupt_outliers(fwhm, np.arange(30) * 64.0, 300.0))[0]) == [12, 13]
