"""A spectrum fitted on its own is the mean of its fits with baseline knots every 1, 1.5 and 2 ppm
(mrs.fit.baseline_average): the numbers, their covariance and the drawn spectra, in one phase frame."""

from dataclasses import replace

import numpy as np
import pytest

from mrs.fit import FitSettings, LCFitter
from mrs.fit.baseline_average import KNOT_SPACINGS_PPM, average
from mrs.fit.toy import TYPICAL_MM, synth_fid, toy_basis

CF, DWELL, N = 123.25, 1 / 4000, 2048


@pytest.fixture(scope="module")
def fits():
    basis = toy_basis(CF, DWELL, N)
    fid = synth_fid(basis, TYPICAL_MM, lorentz_hz=3.0, gauss_hz=4.0, shift_hz=2.0, phase_rad=0.7,
                    noise_sd=2.0, rng=np.random.default_rng(5))
    fitters = [LCFitter(basis, DWELL, N, CF, settings=FitSettings(baseline_knot_spacing_ppm=k))
               for k in KNOT_SPACINGS_PPM]
    return fitters, [f.fit(fid) for f in fitters]


def test_the_numbers_are_the_means_of_the_fits(fits):
    fitters, results = fits
    avg = average(results, fitters[0].dnu, KNOT_SPACINGS_PPM)
    assert avg.baseline_knots_ppm == KNOT_SPACINGS_PPM
    for name in ("Glu", "NAA", "Cr"):
        assert avg.conc[name] == pytest.approx(np.mean([r.conc[name] for r in results]), rel=1e-12)
    np.testing.assert_allclose(avg.cov, np.mean([r.cov for r in results], axis=0))
    i = avg.names.index("Glu")
    assert avg.sd["Glu"] == pytest.approx(np.sqrt(avg.cov[i, i]))
    assert avg.crlb_pct["Glu"] == pytest.approx(100 * avg.sd["Glu"] / avg.conc["Glu"])
    # the nonlinear parameters stay the first (1 ppm) fit's: warm starts and the NAA linewidth use them
    np.testing.assert_array_equal(avg.x, results[0].x)
    # the averaged model still describes the data (its residual is the fits' own size, not larger)
    assert avg.cost <= max(r.cost for r in results) * 1.01


def test_each_fit_is_brought_into_the_first_fits_phase_frame(fits):
    fitters, results = fits
    first = results[0]
    dnu = fitters[0].dnu
    # the same fit stated in another frame: phases 0.9 rad and 2e-3 rad/Hz further, arrays rotated back
    turn = np.exp(-1j * (0.9 + 2e-3 * dnu))
    other = replace(first, phase0_rad=first.phase0_rad + 0.9, phase1_rad_per_hz=first.phase1_rad_per_hz + 2e-3,
                    data=first.data * turn, prediction=first.prediction * turn, baseline=first.baseline * turn,
                    components={k: v * turn for k, v in first.components.items()})
    avg = average([first, other], dnu, (1.0, 1.5))
    np.testing.assert_allclose(avg.prediction, first.prediction, atol=1e-9 * np.abs(first.prediction).max())
    np.testing.assert_allclose(avg.baseline, first.baseline, atol=1e-9 * np.abs(first.prediction).max())
    np.testing.assert_allclose(avg.components["NAA"], first.components["NAA"],
                               atol=1e-9 * np.abs(first.prediction).max())


def test_failed_fits_are_left_out_and_a_failed_first_fit_stands(fits):
    fitters, results = fits
    failed = replace(results[1], success=False, status=-1)
    avg = average([results[0], failed, results[2]], fitters[0].dnu, KNOT_SPACINGS_PPM)
    assert avg.baseline_knots_ppm == (1.0, 2.0)
    assert avg.conc["Glu"] == pytest.approx((results[0].conc["Glu"] + results[2].conc["Glu"]) / 2)
    assert average([replace(results[0], success=False), *results[1:]], fitters[0].dnu,
                   KNOT_SPACINGS_PPM).success is False
    assert average([results[0], failed], fitters[0].dnu, (1.0, 1.5)) is results[0]
