"""Linear-combination fit: recovery of known concentrations, parameters that must matter, CRLB."""

from dataclasses import FrozenInstanceError

import numpy as np
import pytest

from mrs.fit import FitResult, FitSettings, LCFitter
from mrs.fit.crlb import edge_noise_variance
from mrs.fit.models import get_model
from mrs.fit.toy import TYPICAL_MM, synth_fid, toy_basis
from mrs.fit.varpro import AUX_MM_LINES

CF = 123.25
DWELL = 1 / 4000
N = 2048
SMALL = ["NAA", "Cr", "PCr", "GPC", "PCh", "mI", "Glu", "Gln", "GABA", "GSH"]
CONC = {k: TYPICAL_MM[k] for k in SMALL}


@pytest.fixture(scope="module")
def small_basis():
    return toy_basis(CF, DWELL, N, names=SMALL)


@pytest.fixture(scope="module")
def small_fitter(small_basis):
    return LCFitter(small_basis, DWELL, N, CF, settings=FitSettings(complete_mm=False))


def _ratio(res: FitResult, num: str, den: str = "tCr") -> float:
    q = res.quantities()
    return q[num][0] / q[den][0]


def _true_ratio(conc: dict, num: str) -> float:
    parts = {"tCr": ("Cr", "PCr"), "tCho": ("GPC", "PCh"), "Glx": ("Glu", "Gln")}
    val = sum(conc[p] for p in parts.get(num, (num,)))
    return val / (conc["Cr"] + conc["PCr"])


def test_recovers_known_concentrations_with_mm_and_baseline():
    basis = toy_basis(CF, DWELL, N)
    rng = np.random.default_rng(11)
    t = np.arange(N) * DWELL
    # a smooth broad baseline hump the basis does not contain
    baseline = 30.0 * np.exp(2j * np.pi * (1.6 - 4.65) * CF * t - np.pi * 120.0 * t)
    fid = synth_fid(basis, TYPICAL_MM, lorentz_hz=3.0, gauss_hz=4.0, shift_hz=3.0, phase_rad=0.4,
                    noise_sd=1.5, rng=rng, baseline=baseline, mm_lorentz_hz=6.0)
    res = LCFitter(basis, DWELL, N, CF).fit(fid)
    assert res.success, res.message
    for name in ("NAA", "Glu", "mI", "tCho", "Glx"):
        assert _ratio(res, name) == pytest.approx(_true_ratio(TYPICAL_MM, name), rel=0.06), name
    assert res.params["shift_hz_met"] == pytest.approx(3.0, abs=0.3)
    glu, glu_sd = res.quantities()["Glu"]
    assert abs(glu - TYPICAL_MM["Glu"] * res.conc["Cr"] / 5.0) < 0.1 * glu + 3 * glu_sd
    assert res.phase0_rad == pytest.approx(0.4, abs=0.1)  # phi0 is referenced to the window centre


def test_phase_is_fitted_not_ignored(small_basis, small_fitter):
    """Built to fail if the zero-order phase were ignored: a 1.2 rad rotation must come back."""
    rng = np.random.default_rng(3)
    fid0 = synth_fid(small_basis, CONC, noise_sd=1.0, rng=rng)
    res0 = small_fitter.fit(fid0)
    res1 = small_fitter.fit(fid0 * np.exp(1.2j))
    assert res1.phase0_rad - res0.phase0_rad == pytest.approx(1.2, abs=1e-3)
    for n in ("NAA", "Glu", "mI"):
        assert res1.conc[n] == pytest.approx(res0.conc[n], rel=1e-3)


def test_first_order_phase_is_fitted(small_basis, small_fitter):
    rng = np.random.default_rng(4)
    fid = synth_fid(small_basis, CONC, noise_sd=1.0, rng=rng)
    delay_s = 0.2e-3  # acquisition delay: phase 2 pi f delay
    spec = np.fft.fft(fid) * np.exp(-2j * np.pi * np.fft.fftfreq(N, DWELL) * delay_s)
    res = small_fitter.fit(np.fft.ifft(spec))
    assert res.phase1_rad_per_hz == pytest.approx(-2 * np.pi * delay_s, rel=0.05)
    assert _ratio(res, "Glu") == pytest.approx(_true_ratio(CONC, "Glu"), rel=0.03)


def test_window_is_respected(small_basis):
    """An artefact just outside the window changes nothing; widening the window lets it in."""
    rng = np.random.default_rng(5)
    # A purely real Gaussian bump in the spectrum at 4.45 ppm (no dispersion tails, zero inside the
    # 0.2-4.2 window), far taller than NAA: made in the frequency domain for the test.
    f_hz = np.fft.fftfreq(N, DWELL)
    artefact = np.fft.ifft(3e5 * np.exp(-0.5 * ((f_hz - (4.45 - 4.65) * CF) / 4.0) ** 2))
    clean = synth_fid(small_basis, CONC, noise_sd=1.0, rng=rng)
    narrow = LCFitter(small_basis, DWELL, N, CF, settings=FitSettings(window_ppm=(0.2, 4.2), complete_mm=False))
    wide = LCFitter(small_basis, DWELL, N, CF, settings=FitSettings(window_ppm=(0.2, 4.6), complete_mm=False))
    a, b = narrow.fit(clean), narrow.fit(clean + artefact)
    assert a.ppm.min() >= 0.2 and a.ppm.max() <= 4.2
    assert b.conc["Glu"] == pytest.approx(a.conc["Glu"], rel=0.02)
    c, d = wide.fit(clean), wide.fit(clean + artefact)
    assert d.noise_var > 5 * c.noise_var  # the unmodelled peak is now inside the fitted range


def test_crlb_matches_scatter_over_noise_realisations(small_basis, small_fitter):
    """SD of estimates over 50 noise draws vs mean CRLB: ratio within 0.7-1.4."""
    rng = np.random.default_rng(7)
    clean = synth_fid(small_basis, CONC, lorentz_hz=3.0, gauss_hz=4.0)
    est, sds = {n: [] for n in ("Glu", "NAA", "mI")}, {n: [] for n in ("Glu", "NAA", "mI")}
    for _ in range(50):
        noise = 6.0 * (rng.standard_normal(N) + 1j * rng.standard_normal(N))
        res = small_fitter.fit(clean + noise)
        for n in est:
            est[n].append(res.conc[n])
            sds[n].append(res.sd[n])
    for n in est:
        ratio = np.std(est[n], ddof=1) / np.mean(sds[n])
        assert 0.7 <= ratio <= 1.4, (n, ratio)


def test_glx_sd_comes_from_the_covariance(small_basis, small_fitter):
    rng = np.random.default_rng(8)
    res = small_fitter.fit(synth_fid(small_basis, CONC, noise_sd=6.0, rng=rng))
    i, j = res.names.index("Glu"), res.names.index("Gln")
    assert res.cov[i, j] < 0  # Glu and Gln overlap: anticorrelated
    glx_sd = res.quantities()["Glx"][1]
    assert glx_sd < np.sqrt(res.sd["Glu"] ** 2 + res.sd["Gln"] ** 2)
    assert glx_sd == pytest.approx(np.sqrt(res.cov[i, i] + res.cov[j, j] + 2 * res.cov[i, j]), rel=1e-9)


def test_ratio_sd_by_delta_method(small_basis, small_fitter):
    rng = np.random.default_rng(9)
    res = small_fitter.fit(synth_fid(small_basis, CONC, noise_sd=6.0, rng=rng))
    r, sd = res.ratios()["Glu/tCr"]
    assert r == pytest.approx(_ratio(res, "Glu"))
    assert 0 < sd < r


def test_warm_start_reaches_the_same_answer(small_basis, small_fitter):
    rng = np.random.default_rng(10)
    fid = synth_fid(small_basis, CONC, shift_hz=-4.0, noise_sd=3.0, rng=rng)
    cold = small_fitter.fit(fid)
    warm = small_fitter.fit(fid, x0=cold.x)
    assert warm.conc["Glu"] == pytest.approx(cold.conc["Glu"], rel=5e-3)
    assert warm.nfev <= cold.nfev


def test_bad_data_gives_a_failed_result_not_an_exception(small_fitter):
    bad = np.full(N, np.nan, complex)
    res = small_fitter.fit(bad)
    assert not res.success and res.status == -1 and "NaN" in res.message
    res = small_fitter.fit(np.zeros(N, complex))
    assert not res.success


def test_result_is_frozen(small_basis, small_fitter):
    res = small_fitter.fit(synth_fid(small_basis, CONC, noise_sd=1.0))
    with pytest.raises(FrozenInstanceError):
        res.success = False  # type: ignore[misc]


def test_models_are_registered_by_name(small_basis):
    assert get_model("voigt").name == "voigt"
    with pytest.raises(ValueError, match="unknown lineshape model"):
        get_model("nope")
    fid = synth_fid(small_basis, CONC, lorentz_hz=5.0, gauss_hz=0.0, noise_sd=1.0)
    # no free lineshape kernel here: it would share the width with the model's Lorentzian
    res = LCFitter(small_basis, DWELL, N, CF, settings=FitSettings(model="lorentzian", complete_mm=False,
                                                                   kernel_half_width_ppm=0.0)).fit(fid)
    assert res.params["lorentz_hz_met"] == pytest.approx(5.0, abs=0.2)
    # one noise draw, Glu/tCr CRLB about 1 %: within 4 SD (this draw is 3 SD low)
    assert _ratio(res, "Glu") == pytest.approx(_true_ratio(CONC, "Glu"), rel=0.04)


def test_missing_macromolecules_are_completed():
    basis = toy_basis(CF, DWELL, N, names=SMALL)
    f = LCFitter(basis, DWELL, N, CF)
    assert any(n.startswith("MMaux") for n in f.names)
    assert not any(n.startswith("MMaux") for n in LCFitter(basis, DWELL, N, CF,
                                                            settings=FitSettings(complete_mm=False)).names)


def test_mm_area_priors_enter_the_fisher_information():
    """The MM priors are rows of the linear solve; the posterior CRLB must shrink with them, and
    the sandwich (noise-only) covariance must not exceed the posterior one."""
    basis = toy_basis(CF, DWELL, N)
    fid = synth_fid(basis, TYPICAL_MM, lorentz_hz=3.0, gauss_hz=4.0, noise_sd=3.0,
                    rng=np.random.default_rng(5), mm_lorentz_hz=6.0)
    common = dict(complete_mm=False, mm_shift_each=False)
    post = LCFitter(basis, DWELL, N, CF, settings=FitSettings(crlb_sandwich=False, **common)).fit(fid)
    free = LCFitter(basis, DWELL, N, CF, settings=FitSettings(crlb_sandwich=False, mm_priors=False,
                                                             **common)).fit(fid)
    sand = LCFitter(basis, DWELL, N, CF, settings=FitSettings(**common)).fit(fid)
    assert post.sd["MM30"] < 0.9 * free.sd["MM30"]
    assert sand.sd["MM30"] <= post.sd["MM30"] * (1 + 1e-6)
    assert sand.conc["MM30"] == pytest.approx(post.conc["MM30"])


def test_component_fid_includes_the_t2_set_offset(small_basis):
    """QC's NAA linewidth comes from component_fid: it must carry NAA's own Lorentzian offset."""
    f = LCFitter(small_basis, DWELL, N, CF, settings=FitSettings(complete_mm=False))
    x = np.zeros(len(f.param_names))
    base = f.component_fid("NAA", x)
    x[f.param_names.index("dlorentz_hz_NAA+NAAG")] = 2.0
    np.testing.assert_allclose(f.component_fid("NAA", x), base * np.exp(-np.pi * 2.0 * f.t), atol=1e-9)
    np.testing.assert_allclose(f.component_fid("Glu", x), f.component_fid("Glu", np.zeros_like(x)))


def test_held_parameters_stay_at_their_start_and_leave_the_crlb():
    from mrs.fit import FitSettings, LCFitter
    from mrs.fit.toy import TYPICAL_MM, synth_fid, toy_basis

    basis = toy_basis(123.25, 1 / 4000, 2048, names=["NAA", "Cr", "PCr", "GPC", "Glu", "Gln", "mI", "MM09", "MM20"])
    fitter = LCFitter(basis, 1 / 4000, 2048, 123.25, settings=FitSettings())
    rng = np.random.default_rng(3)
    fid = synth_fid(basis, TYPICAL_MM, lorentz_hz=3.0, gauss_hz=4.0, noise_sd=5.0, rng=rng)
    free = fitter.fit(fid)
    mask = fitter.session_mask()
    assert mask.any() and not mask[:2].any()  # phases are never session parameters
    start = free.x.copy()
    # a reference that differs: 0.7 Hz on each width/shift offset; 0.02 on each lineshape-kernel tap
    # (a tap is a fraction of the line's area, prior SD 0.05: 0.7 would be no lineshape at all)
    bump = np.where(np.isin(np.arange(start.size), np.arange(start.size)[fitter.kernel_slice]), 0.02, 0.7)
    start[mask] = np.clip(start[mask] + bump[mask], fitter.lo[mask], fitter.hi[mask])
    held = fitter.fit(fid, x0=start, hold=mask)
    np.testing.assert_array_equal(held.x[mask], start[mask])
    assert held.success and held.x[0] != start[0]
    # fewer free parameters: no larger an uncertainty for Glu than the free fit's
    assert held.sd["Glu"] <= free.sd["Glu"] * 1.0001


def test_basis_without_mm_is_completed_only_below_2_1_ppm():
    """No MM entry at all, or MM entries only below 2.1 ppm (LCModel's MM09-MM20): only the MM lines
    resolved from the metabolites (up to 2.04 ppm) are added, none under Glu/Gln; a basis with an
    MM entry above 2.1 ppm is completed at every consensus position."""
    basis = toy_basis(CF, DWELL, N, names=SMALL)
    bare = basis.subset([n for n in basis.names if not n.upper().startswith(("MM", "LIP"))])
    added = [n for n in LCFitter(bare, DWELL, N, CF).names if n.startswith("MMaux")]
    assert added and max(int(n[5:]) for n in added) <= 210
    full = LCFitter(bare, DWELL, N, CF, settings=FitSettings(aux_mm_lines=AUX_MM_LINES)).names
    assert any(n.startswith("MMaux") and int(n[5:]) > 300 for n in full)
    low = toy_basis(CF, DWELL, N, names=SMALL + ["MM09", "MM12", "MM14", "MM17", "MM20"])
    assert not any(n.startswith("MMaux") for n in LCFitter(low, DWELL, N, CF).names)
    high = toy_basis(CF, DWELL, N, names=SMALL + ["MM09", "MM20", "MM30"])
    added_high = {n for n in LCFitter(high, DWELL, N, CF).names if n.startswith("MMaux")}
    assert {"MMaux121", "MMaux226", "MMaux379", "MMaux398"} <= added_high


def test_edge_noise_ignores_smooth_tails_and_correlated_noise():
    rng = np.random.default_rng(3)
    n = 2048
    draws = [rng.standard_normal(n) + 1j * rng.standard_normal(n) for _ in range(20)]
    # unbiased over draws (one estimate has about 7.5 % SD: 256 bins)
    assert np.mean([edge_noise_variance(np.fft.fft(x)) / n for x in draws]) == pytest.approx(1.0, rel=0.05)
    noise = draws[0]
    # an undecayed water line's tail across the edge band, 40 noise SDs: not noise
    t = np.arange(n) * DWELL
    water = 40 * np.sqrt(n) * np.exp(2j * np.pi * 3.0 * t - np.pi * 2.0 * t) * np.exp(1j * 0.7)
    assert edge_noise_variance(np.fft.fft(noise + water)) == pytest.approx(edge_noise_variance(np.fft.fft(noise)),
                                                                        rel=0.1)
    # zero-filled FID: neighbouring bins share noise; the estimate must not fall below it
    half = noise.copy()
    half[n // 2:] = 0
    assert edge_noise_variance(np.fft.fft(half)) / (n / 2) == pytest.approx(1.0, rel=0.25)
    # a filtered FID (5 Hz apodisation): neighbouring bins share noise, the estimate follows the
    # per-bin variance sum |w|^2 instead of the differences' (which would fall far below it)
    w = np.exp(-np.pi * 5.0 * np.arange(n) * DWELL)
    assert edge_noise_variance(np.fft.fft(noise * w)) / np.sum(w ** 2) == pytest.approx(1.0, rel=0.25)


@pytest.mark.parametrize("scale", [2.0 ** -100, 2.0 ** 100, 1e30])
def test_basis_in_any_units_gives_the_same_fit(small_basis, scale):
    """Other groups' bases come in any units; the MM lines the fit adds are at fid[0] = 1. At 2^-100
    every metabolite fell under the "signal in the window" threshold (relative to the largest
    entry); at 1e30 the added lines did, and the ratio priors' floor (2 % of the largest
    concentration, MM lines included) made the priors vanish."""
    fid = synth_fid(small_basis, CONC, lorentz_hz=3.0, gauss_hz=4.0, noise_sd=20.0, rng=np.random.default_rng(8))
    ref = LCFitter(small_basis, DWELL, N, CF).fit(fid)
    scaled = type(small_basis)(small_basis.names, small_basis.fids * scale, DWELL, CF)
    res = LCFitter(scaled, DWELL, N, CF).fit(fid)
    assert res.success and res.names == ref.names and any(n.startswith("MMaux") for n in res.names)
    for q in ("Glu", "Gln", "GABA", "tNAA", "tCho"):
        assert _ratio(res, q) == pytest.approx(_ratio(ref, q), rel=1e-6), q
    for n in ("NAA", "Glu", "Gln", "MMaux091"):
        assert res.conc[n] * (scale if n in SMALL else 1.0) == pytest.approx(ref.conc[n], rel=1e-6), n
        assert res.sd[n] * (scale if n in SMALL else 1.0) == pytest.approx(ref.sd[n], rel=1e-6), n


@pytest.mark.parametrize("scale", [1e-200, 1e-40, 1e40])
def test_data_in_any_units_give_the_same_fit(small_basis, small_fitter, scale):
    """Other tools store data in any units: 1e-200 made the Fisher matrix underflow (LinAlgError)
    and 1e40 overflowed the single-precision model before the fit scaled its input. (Not bit
    for bit: multiplying by 1e-200 rounds each sample, and the stop rule turns that into ~1e-7.)"""
    fid = synth_fid(small_basis, CONC, noise_sd=1.0, rng=np.random.default_rng(8))
    ref = small_fitter.fit(fid)
    res = small_fitter.fit(fid * scale)
    assert res.success
    for n in ("NAA", "Glu", "Cr"):
        assert res.conc[n] / scale == pytest.approx(ref.conc[n], rel=1e-5)
        assert res.sd[n] / scale == pytest.approx(ref.sd[n], rel=1e-5)
    assert res.params == pytest.approx(ref.params, rel=1e-5, abs=1e-6)
    assert res.noise_var == pytest.approx(ref.noise_var * scale ** 2, rel=1e-5)  # (0 at 1e-200: float64's limit)
    assert np.abs(res.prediction / scale - ref.prediction).max() <= 1e-5 * np.abs(ref.prediction).max()


def test_basis_order_does_not_matter_with_mm_among_the_metabolites():
    """Folders read in name order (FSL-MRS's MM09..MM21 between Lac and NAA, the fitting challenge's
    Mac between Lac and NAA) put macromolecules among the metabolites. The lineshape was applied in
    place through `fl[rows]`, a copy for such a group, so those rows of the model stayed uninitialised
    memory: the fitting challenge's jMRUI basis failed every fit with "array must not contain infs or
    NaNs". Any order now gives the fit of the metabolites-first order."""
    basis = toy_basis(CF, DWELL, N)
    fid = synth_fid(basis, TYPICAL_MM, lorentz_hz=3.0, gauss_hz=4.0, noise_sd=1.5, rng=np.random.default_rng(5),
                    mm_lorentz_hz=6.0)
    ref = LCFitter(basis, DWELL, N, CF).fit(fid)
    names = sorted(basis.names, key=str.lower)  # MM entries now sit among the metabolites
    assert names != list(basis.names)
    mixed = basis.subset(names)
    res = LCFitter(mixed, DWELL, N, CF).fit(fid)
    assert ref.success and res.success, res.message
    for n in basis.names:
        assert res.conc[n] == pytest.approx(ref.conc[n], rel=1e-4, abs=1e-6 * ref.conc["Cr"]), n
        assert res.sd[n] == pytest.approx(ref.sd[n], rel=1e-3), n
