"""simulate_basis / basis_for_acquisition / Basis.resampled: normalisation, phase, cache, grids."""

import subprocess
import sys

import numpy as np
import pytest

import mrs.basis_sim as bs
from mrs.basis import Basis, BasisError, ppm_axis, to_spectrum
from mrs.basis_sim import DEFAULT_METABOLITES, basis_for_acquisition, simulate_basis

CF = 123.2
DWELL = 1 / 4000
N = 2048


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MRSMON_CACHE", str(tmp_path / "cache"))


def test_default_metabolite_names():
    assert DEFAULT_METABOLITES == ("NAA", "NAAG", "Cr", "PCr", "GPC", "PCh", "mI", "sI", "Glu", "Gln", "GABA",
                                   "GSH", "Lac", "Asp", "Tau", "Glc", "Ala", "Gly", "PE")


@pytest.mark.parametrize("seq, scale", [("fid", 1.0), ("press", 1.0), ("slaser", 1.0), ("steam", 0.5)])
def test_singlet_area_equals_protons_and_is_upright(seq, scale):
    b = simulate_basis(CF, seq, 0.0 if seq == "fid" else 0.030, DWELL, N, ["Cr", "sI"])
    assert b.fids[b.index("Cr"), 0] == pytest.approx(5 * scale)
    assert b.fids[b.index("sI"), 0] == pytest.approx(6 * scale)
    spec = to_spectrum(b.fids[b.index("sI")])
    ax = ppm_axis(N, DWELL, CF, b.centre_ppm)
    i = np.argmax(np.abs(spec))
    assert ax[i] == pytest.approx(3.34, abs=1 / (N * DWELL) / CF)
    assert spec[i].real > 0


def test_full_default_set_at_3t_press():
    b = simulate_basis(CF, "press", 0.030, DWELL, N)
    assert b.names == DEFAULT_METABOLITES
    assert b.meta["sequence"] == "press" and b.meta["te_s"] == 0.030 and b.meta["field_mhz"] == CF
    assert b.meta["protons"]["Glu"] == 5
    # NAA's tallest point is its acetyl singlet, near 2.008 ppm.
    ax = ppm_axis(N, DWELL, CF, b.centre_ppm)
    assert ax[np.argmax(to_spectrum(b.fids[b.index("NAA")]).real)] == pytest.approx(2.008, abs=0.01)


def test_cache_hit_skips_simulation(monkeypatch, tmp_path):
    a = simulate_basis(CF, "press", 0.030, DWELL, 512, ["Glu", "Lac"])
    assert len(list((tmp_path / "cache" / "basis").glob("*.npz"))) == 2

    def boom(*args, **kwargs):
        raise AssertionError("simulated although cached")

    monkeypatch.setattr(bs, "simulate_metabolite", boom)
    b = simulate_basis(CF, "press", 0.030, DWELL, 512, ["Glu", "Lac"])
    assert np.array_equal(a.fids, b.fids)
    with pytest.raises(AssertionError, match="simulated although cached"):
        simulate_basis(CF, "press", 0.031, DWELL, 512, ["Glu"])  # other TE: a new key


def test_cache_failures_do_not_break_simulation(monkeypatch, tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    monkeypatch.setenv("MRSMON_CACHE", str(blocker))  # mkdir under a file fails
    b = simulate_basis(CF, "press", 0.030, DWELL, 256, ["Lac"])
    assert b.fids.shape == (1, 256)
    monkeypatch.setenv("MRSMON_CACHE", str(tmp_path / "c2"))
    simulate_basis(CF, "press", 0.030, DWELL, 256, ["Lac"])
    for f in (tmp_path / "c2" / "basis").glob("*.npz"):
        f.write_bytes(b"corrupt")
    c = simulate_basis(CF, "press", 0.030, DWELL, 256, ["Lac"])
    assert np.allclose(b.fids, c.fids)


def test_cache_disabled_writes_nothing(tmp_path):
    simulate_basis(CF, "fid", 0.0, DWELL, 256, ["Cr"], cache=False)
    assert not (tmp_path / "cache").exists()


def test_basis_for_acquisition_adds_macromolecules():
    acq = {"spectrometer_frequency_mhz": CF, "dwell_time_s": DWELL, "points": 1024, "echo_time_s": 0.030,
           "sequence": "sLASER", "coils": 8}
    b = basis_for_acquisition(acq)
    assert b.names[:len(DEFAULT_METABOLITES)] == DEFAULT_METABOLITES
    assert {"MM09", "MM20", "Lip13"} <= set(b.names)
    assert b.fids.shape == (len(b.names), 1024) and b.meta["sequence"] == "slaser"


@pytest.mark.parametrize("name, expected", [("PRESS", "press"), ("steam", "steam"), ("semi-LASER", "slaser")])
def test_sequence_names_are_case_insensitive(name, expected):
    assert bs.normalise_sequence(name) == expected


def test_unknown_sequence_and_missing_fields_are_clear_errors():
    with pytest.raises(BasisError, match="cannot simulate a basis for sequence 'MEGA'"):
        basis_for_acquisition({"spectrometer_frequency_mhz": CF, "dwell_time_s": DWELL, "points": 64,
                               "echo_time_s": 0.03, "sequence": "MEGA"})
    with pytest.raises(BasisError, match="lack 'points'"):
        basis_for_acquisition({"spectrometer_frequency_mhz": CF, "dwell_time_s": DWELL, "echo_time_s": 0.03,
                               "sequence": "PRESS"})


# ---- resampling ------------------------------------------------------------------------------

def _singlet(ppm, protons, dwell, n, lw_hz=2.0, cf=CF):
    t = np.arange(n) * dwell
    return protons * np.exp(2j * np.pi * (ppm - 4.65) * cf * t - np.pi * lw_hz * t)


@pytest.mark.parametrize("dwell_out, n_out", [(1 / 4000, 2048), (1 / 3000, 1024), (1 / 2941.3, 2048),
                                              (1 / 8000, 1024)])
def test_resampling_preserves_singlet_position_and_area(dwell_out, n_out):
    b = Basis(("Cr",), _singlet(3.027, 3, 1 / 8000, 16384)[None], 1 / 8000, CF)
    out = b.resampled(dwell_out, n_out)[0]
    assert out[0] == pytest.approx(3.0, abs=1e-9)  # area (fid[0]) exact
    ref = _singlet(3.027, 3, dwell_out, n_out)
    assert np.abs(out - ref).max() < 1e-3 * 3  # same line at the same frequency
    ax = ppm_axis(n_out, dwell_out, CF)
    assert ax[np.argmax(to_spectrum(out).real)] == pytest.approx(3.027, abs=1 / (n_out * dwell_out) / CF)


def test_resampling_recentres_receiver():
    b = Basis(("Cr",), _singlet(3.027, 3, DWELL, N)[None], DWELL, CF, centre_ppm=4.65)
    out = b.resampled(DWELL, N, centre_ppm=4.7)[0]
    ax = ppm_axis(N, DWELL, CF, 4.7)
    assert ax[np.argmax(to_spectrum(out).real)] == pytest.approx(3.027, abs=1 / (N * DWELL) / CF)


def test_resampling_corrects_a_small_field_mismatch():
    b = Basis(("Cr",), _singlet(3.027, 3, DWELL, 8192, cf=123.2)[None], DWELL, 123.2)
    out = b.resampled(DWELL, N, cf_mhz=123.9)[0]
    # Time scaling moves the line to its ppm at 123.9 MHz (and scales its width by the same 0.6%).
    ref = _singlet(3.027, 3, DWELL, N, lw_hz=2.0 * 123.9 / 123.2, cf=123.9)
    assert np.abs(out - ref).max() < 1e-3


def test_only_a_distant_field_is_refused():
    b = Basis(("Cr",), _singlet(3.027, 3, DWELL, 512, lw_hz=0.1)[None], DWELL, CF)
    with pytest.raises(BasisError, match="simulate a basis at the data's field"):
        b.resampled(DWELL, 512, cf_mhz=297.2)
    with pytest.raises(BasisError, match="5 %"):
        b.resampled(DWELL, 512, cf_mhz=CF * 1.06)


def _peak_ppm(fid, dwell, cf, centre=4.65):
    spec = np.abs(to_spectrum(np.pad(fid, (0, 7 * fid.size))))
    return ppm_axis(spec.size, dwell, cf, centre)[np.argmax(spec)]


def test_a_basis_at_a_nearby_field_is_used_on_the_ppm_axis():
    # The pair: HZPPPM 123.26 MHz basis, 123.2 MHz data, both 4000 Hz wide. Once refused as
    # "data bandwidth 4000 Hz is wider than the basis's 4000 Hz".
    fids = np.array([_singlet(ppm, 3, DWELL, N, cf=123.26) for ppm in (2.008, 3.027)])
    b = Basis(("NAA", "Cr"), fids, DWELL, 123.26)
    out = b.resampled(DWELL, N, cf_mhz=123.2)
    for row, ppm in zip(out, (2.008, 3.027)):
        assert _peak_ppm(row, DWELL, 123.2) == pytest.approx(ppm, abs=2e-3)
        assert row[0] == pytest.approx(3.0, abs=1e-9)
    notes = b.conversion_notes(DWELL, N, cf_mhz=123.2)
    field = [n for n in notes if n["what"] == "field"]
    assert field and "ppm axis" in field[0]["message"] and field[0]["action"] == "converted"


def test_a_dwell_rounding_error_is_the_same_grid():
    badelt = 0.000250000012  # as LCModel basis files write it
    b = Basis(("Cr",), _singlet(3.027, 3, badelt, 4096)[None], badelt, CF)
    out = b.resampled(0.00025, 2048)[0]
    assert np.array_equal(out, b.fids[0, :2048])  # no interpolation
    whats = {n["what"]: n for n in b.conversion_notes(0.00025, 2048)}
    assert whats["dwell"]["action"] == "rounding" and whats["points"]["action"] == "converted"


def test_a_wider_data_band_and_an_undecayed_basis_are_handled_and_noted():
    b = Basis(("Cr",), _singlet(3.027, 3, DWELL, 512, lw_hz=0.1)[None], DWELL, CF)
    wide = b.resampled(DWELL / 2, 1024)[0]  # twice the basis's bandwidth, same duration
    assert wide[0] == pytest.approx(3.0) and _peak_ppm(wide, DWELL / 2, CF) == pytest.approx(3.027, abs=2e-3)
    assert any(n["what"] == "bandwidth" for n in b.conversion_notes(DWELL / 2, 1024))
    long = b.resampled(DWELL, 4096)[0]  # 8x longer than a basis that has not decayed: zero-filled
    assert np.array_equal(long[:512], b.fids[0]) and not long[512:].any()
    pts = [n for n in b.conversion_notes(DWELL, 4096) if n["what"] == "points"][0]
    assert pts["action"] == "warning" and "ripples" in pts["message"]
    # data a rounding longer (a field 0.05 % off stretches the basis's time axis): a conversion only
    b2k = Basis(("Cr",), _singlet(3.027, 3, DWELL, 2048, lw_hz=0.1)[None], DWELL, CF)
    near = [n for n in b2k.conversion_notes(DWELL, 2048, cf_mhz=CF * 1.0005) if n["what"] == "points"]
    assert near and near[0]["action"] == "converted" and "rounding" in near[0]["message"]


def test_resampling_a_decayed_basis_to_a_longer_grid_zero_fills():
    b = Basis(("Cr",), _singlet(3.027, 3, DWELL, 4096, lw_hz=8)[None], DWELL, CF)
    out = b.resampled(DWELL, 8192)[0]
    assert np.array_equal(out[:4096], b.fids[0]) and not out[4096:].any()


def _mrsmon(*argv: str, cwd) -> subprocess.CompletedProcess:
    # A real process: the CLI end to end (and immune to test-directory packages shadowing mrsmon).
    return subprocess.run([sys.executable, "-m", "mrsmon", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("out_name, fmt", [("b.BASIS", "lcmodel"), ("b_fsl", "fsl")])
def test_cli_basis_writes_a_readable_set(tmp_path, out_name, fmt):
    from mrs.io import detect_format, read_basis

    out = tmp_path / out_name
    res = _mrsmon("basis", "--field-mhz", "123.2", "--sequence", "press", "--te-ms", "30", "--points", "512",
                  "--bandwidth-hz", "4000", "--metabolites", "Glu,Cr", "--out", str(out), cwd=tmp_path)
    assert res.returncode == 0 and "wrote 2 spectra" in res.stdout
    assert detect_format(out) == fmt
    b = read_basis(out)
    assert set(b.names) == {"Glu", "Cr"} and b.n_points == 512 and b.dwell_s == pytest.approx(1 / 4000)
    assert b.fids[b.index("Cr"), 0].real == pytest.approx(5.0, rel=1e-6)


def test_cli_basis_bad_input_is_one_line(tmp_path):
    res = _mrsmon("basis", "--field-mhz", "123.2", "--sequence", "press", "--te-ms", "30", "--te1-ms", "40",
                  "--points", "512", "--bandwidth-hz", "4000", "--out", str(tmp_path / "x.BASIS"), cwd=tmp_path)
    assert res.returncode == 2 and "TE1" in res.stderr and "Traceback" not in res.stderr


def test_lines_beyond_the_spectral_width_are_dropped_not_aliased():
    # 7T, 1.8 kHz: +-900 Hz is 4.65 +- 3.03 ppm, so the 1.31 ppm lactate methyl lies outside the band.
    b = simulate_basis(297.2, "fid", 0.0, 1 / 1800, 2048, ["Lac"])
    assert b.meta["dropped_outside_bandwidth"]["Lac"] == pytest.approx(3.0, rel=1e-3)
    assert b.fids[0, 0].real == pytest.approx(1.0, rel=1e-3)  # only the 4.10 ppm CH remains


def test_a_non_finite_entry_is_refused_by_name():
    """A NaN in one entry (an FSL-MRS .json can hold one) made every fit fail with a numpy message."""
    fids = np.vstack([_singlet(3.027, 3, DWELL, 512), _singlet(2.008, 3, DWELL, 512)])
    fids[1, 5] = np.nan
    with pytest.raises(BasisError, match="NaN or infinity: NAA"):
        Basis(("Cr", "NAA"), fids, DWELL, CF)
