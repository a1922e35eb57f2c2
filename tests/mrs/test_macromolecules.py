"""Parametrised MM/lipid basis and measured MM spectra."""

import numpy as np
import pytest

from mrs.basis import Basis, BasisError, ppm_axis, to_spectrum
from mrs.io import write_basis
from mrs.macromolecules import DEFAULT_MM, MM_COMPONENTS, GaussLine, load_measured_mm, mm_basis

CF, DWELL, N = 123.2, 1 / 4000, 2048


def test_default_components_and_names():
    b = mm_basis(CF, DWELL, N)
    assert b.names == DEFAULT_MM
    assert {"MM09", "MM12", "MM14", "MM17", "MM20", "MM22", "MM30", "Lip09", "Lip13", "Lip20"} == set(b.names)


@pytest.mark.parametrize("name", list(MM_COMPONENTS))
def test_area_and_position(name):
    b = mm_basis(CF, DWELL, N, [name])
    lines = MM_COMPONENTS[name]
    assert b.fids[0, 0] == pytest.approx(sum(ln.area for ln in lines))
    spec = to_spectrum(b.fids[0]).real
    tallest = max(lines, key=lambda ln: ln.area / ln.fwhm_ppm)
    assert ppm_axis(N, DWELL, CF)[np.argmax(spec)] == pytest.approx(tallest.ppm, abs=0.03)
    assert spec.min() > -1e-6 * spec.max()  # pure absorption Gaussians: no negative lobes


def test_gaussian_width_matches_fwhm():
    b = mm_basis(CF, 1 / 4000, 8192, {"X": [GaussLine(1.0, 0.10, 1.0)]})
    spec = to_spectrum(b.fids[0]).real
    ax = ppm_axis(8192, 1 / 4000, CF)
    above = ax[spec >= spec.max() / 2]
    assert above.max() - above.min() == pytest.approx(0.10, abs=0.005)


def test_unknown_component_is_a_clear_error():
    with pytest.raises(BasisError, match="unknown macromolecule component"):
        mm_basis(CF, DWELL, N, ["MM99"])


def test_load_measured_mm_from_a_one_spectrum_file(tmp_path):
    measured = mm_basis(CF, 1 / 5000, 4096, ["MM09"])
    write_basis(Basis(("measuredMM",), measured.fids, measured.dwell_s, CF), tmp_path / "mm.BASIS")
    mm = load_measured_mm(tmp_path / "mm.BASIS")
    assert mm.names == ("MM",) and mm.meta["original_name"] == "measuredMM"
    on_grid = load_measured_mm(tmp_path / "mm.BASIS", dwell_s=DWELL, n_points=N)
    assert on_grid.fids.shape == (1, N) and on_grid.fids[0, 0] == pytest.approx(3.0, rel=1e-5)


def test_load_measured_mm_refuses_a_whole_basis_set(tmp_path):
    write_basis(mm_basis(CF, DWELL, 256), tmp_path / "set")
    with pytest.raises(BasisError, match="must hold one"):
        load_measured_mm(tmp_path / "set")
    assert load_measured_mm(tmp_path / "set", select="MM12").names == ("MM",)


def test_area_priors_tie_mm_to_the_09_component_and_lipids_to_13():
    from mrs.macromolecules import area_prior_rows

    names = ["NAA", "MM09", "MM30", "MMx", "Lip13", "Lip09", "MM50"]
    peak = np.array([np.nan, 0.92, 3.01, 1.9, 1.28, 0.89, 5.0])
    lip = np.array([False, False, False, False, True, True, False])
    rows = {(names[i], names[j]): (r, sd) for i, j, r, sd in area_prior_rows(names, peak, lip)}
    assert set(rows) == {("MM30", "MM09"), ("Lip09", "Lip13")}  # 1.9 and 5.0 ppm: no table position
    assert 0 < rows[("MM30", "MM09")][0] < 1 and rows[("MM30", "MM09")][1] > 0
    # no anchor near 0.9 ppm: no MM priors at all
    assert area_prior_rows(["MM30"], np.array([3.0]), np.array([False])) == []


def test_fitter_builds_prior_rows_from_the_basis_peaks():
    from mrs.fit import FitSettings, LCFitter
    from mrs.fit.toy import toy_basis

    basis = toy_basis(CF, DWELL, N)
    f = LCFitter(basis, DWELL, N, CF, settings=FitSettings(complete_mm=False))
    i09, i30 = f.names.index("MM09"), f.names.index("MM30")
    row = next(r for r in f.prior_d if r[i30] > 0)
    assert row[i09] < 0 and np.count_nonzero(row) == 2  # area30 - ratio * area09
    off = LCFitter(basis, DWELL, N, CF, settings=FitSettings(complete_mm=False, mm_priors=False))
    assert off.prior_d.shape[0] == 0
