"""The independent truth set (bench/truthset): its basis reader, what it writes, and the truth."""

import json

import numpy as np
import pytest

from bench.bench_fit_external import parse_lcmodel_table, ratios_from_conc
from bench.truthset.basis_file import read_lcmodel_basis
from bench.truthset.generate import CONFIGS, DATA, generate_set, true_ratios
from mrs.io.nifti_mrs import load_transients


def read_nifti_mrs(path):
    transients, acq, _ = load_transients(path)
    return transients, acq


@pytest.fixture(scope="module")
def spant():
    return read_lcmodel_basis(DATA / "spant_press_3t.basis")


def test_public_basis_reads_with_its_singlets_in_place(spant):
    assert len(spant.names) == 17 and spant.fids.shape == (17, 1024)
    assert spant.cf_mhz == pytest.approx(127.7861) and spant.dwell_s == pytest.approx(5e-4)
    ppm = 4.65 + np.fft.fftfreq(1024, spant.dwell_s) / spant.cf_mhz
    for name, where in (("NAA", 2.01), ("Cr", 3.03), ("PCh", 3.21)):
        spec = np.fft.fft(spant.fids[spant.names.index(name)])
        assert ppm[np.argmax(np.abs(spec))] == pytest.approx(where, abs=0.03), name


def test_generated_files_hold_the_spectrum_in_each_convention(tmp_path, spant):
    config = CONFIGS["spant-dev"]
    doc = generate_set(config, tmp_path, n_spectra=2, crlb_spectra=1, crlb_draws=2)
    assert [s["crlb_group"] for s in doc["spectra"]] == [None, None, 0, 0]
    assert json.loads((tmp_path / "truth.json").read_text())["spectra"][0]["stem"] == doc["spectra"][0]["stem"]
    s = doc["spectra"][0]
    data, acq = read_nifti_mrs(tmp_path / s["files"]["nifti"])
    assert acq["spectrometer_frequency_mhz"] == pytest.approx(spant.cf_mhz)
    raw_lines = (tmp_path / s["files"]["raw"]).read_text().splitlines()
    start = raw_lines.index(" $END", raw_lines.index(" $NMID")) + 1
    raw = np.array([complex(float(v[:16]), float(v[16:])) for v in raw_lines[start:]])
    # .RAW is LCModel's time convention: the conjugate of the NIfTI-MRS samples
    np.testing.assert_allclose(raw, np.conj(data[0, 0]), rtol=1e-4, atol=1e-6 * np.abs(raw).max())
    control = (tmp_path / s["files"]["control"]).read_text()
    assert "NUNFIL = 1024" in control and s["files"]["raw"] in control
    # noise draws of one spectrum share everything but the noise
    d0, _ = read_nifti_mrs(tmp_path / doc["spectra"][2]["files"]["nifti"])
    d1, _ = read_nifti_mrs(tmp_path / doc["spectra"][3]["files"]["nifti"])
    diff = d0[0, 0] - d1[0, 0]
    assert 0 < np.std(diff) < 0.05 * np.abs(d0[0, 0]).max()
    assert s["ratios"] == true_ratios(s["params"]["amplitudes"])
    assert s["ratios"]["mI/tCr"] == pytest.approx(s["params"]["amplitudes"]["Ins"] / (
        s["params"]["amplitudes"]["Cr"] + s["params"]["amplitudes"]["PCr"]))


def test_conventions_switch_changes_how_files_are_stored(tmp_path):
    from dataclasses import replace

    doc = generate_set(replace(CONFIGS["spant-dev"], conventions=True), tmp_path, n_spectra=12)
    kinds = {s["params"]["convention"] for s in doc["spectra"]}
    assert {"standard", "conjugated"} <= kinds and len(kinds) >= 3


def test_lcmodel_table_is_parsed_into_ratios():
    table = """$$CONC 5 lines
    Conc.  %SD /Cr+PCr  Metabolite
 9.88E-02  17%   0.521 Cr
 9.08E-02  18%   0.479 PCr
    0.269   5%   1.419 Glu
    0.166   4%   0.875 Ins
    0.190   2%   1.000 Cr+PCr
$$MISC  6 lines
"""
    conc, sd = parse_lcmodel_table(table)
    assert set(conc) == {"Cr", "PCr", "Glu", "Ins"} and sd["Glu"] == pytest.approx(0.269 * 0.05)
    r = ratios_from_conc(conc)
    assert r["Glu/tCr"] == pytest.approx(0.269 / 0.1896) and r["mI/tCr"] == pytest.approx(0.166 / 0.1896)


def test_simulated_basis_follows_the_configured_scanner(tmp_path):
    """A set for another scanner (7T semi-LASER, 5 kHz) is simulated, written and stored for it;
    the 3T PRESS default keeps the file name the cached sets were made with."""
    from dataclasses import replace

    from bench.truthset.generate import load_basis

    seven = replace(CONFIGS["sim7t-r5"], points=512)  # a short grid keeps the test quick
    doc = generate_set(seven, tmp_path / "7t", n_spectra=1)
    assert doc["cf_mhz"] == pytest.approx(297.2) and doc["points"] == 512
    assert doc["dwell_s"] == pytest.approx(1 / 5000)
    assert "slaser_te28_297.2_5000hz_512" in doc["basis_file"]
    s = doc["spectra"][0]
    data, acq = read_nifti_mrs(tmp_path / "7t" / s["files"]["nifti"])
    assert data.shape[-1] == 512 and acq["spectrometer_frequency_mhz"] == pytest.approx(297.2)
    # the files state the scanner's protocol (a basis made for it fits them without a warning)
    assert acq["sequence"] == "sLASER" and acq["echo_time_s"] == pytest.approx(0.028)
    raw = (tmp_path / "7t" / s["files"]["raw"]).read_text()
    assert "SEQ = 'sLASER'" in raw and "ECHOT = 28.00" in raw
    assert s["params"]["t2_scale"] == 0.65 and s["params"]["mm_width_scale"] == 2.0
    # ... and its T2s are shorter: the metabolites alone decay faster with t2_scale 0.65 than 1
    from bench.truthset.generate import draw_parameters, synthesise

    basis7, _ = load_basis(seven, tmp_path / "7t")
    p = {**s["params"], "mm_scale": 0.0, "lipid_scale": 0.0, "water_height": 0.0, "baseline_height": 0.0,
         "field_fwhm_hz": 1.0}  # narrow field map: the decay is the T2s'
    late = {}
    for scale in (0.65, 1.0):
        clean = synthesise(basis7, {**draw_parameters(seven, basis7, 0), **p, "t2_scale": scale})[1]
        late[scale] = float(np.sum(np.abs(clean[256:]) ** 2) / np.sum(np.abs(clean[:256]) ** 2))
    assert late[0.65] < 0.9 * late[1.0]  # (measured 0.73x; 1x were T2 not applied)
    # MM lines are broader in Hz by the set's factor (each line's width is drawn x0.8-1.25 of 3T's)
    widths = [ln["fwhm_hz"] for ln in s["facts"]["mm_lines"]]
    assert min(widths) >= 0.8 * 14.0 * 2.0 - 0.01
    _, path = load_basis(CONFIGS["sim-r4"], tmp_path / "3t")
    assert path.name == "mrsmon_sim_press_te30_123.2.basis"


def test_fitters_can_be_given_a_basis_with_other_groups_mm_entries(tmp_path, spant):
    """`fit_basis_mm`: the same spectra, and a .BASIS holding the original entries unchanged plus
    MM entries that both our reader and the truth set's own put at their positions."""
    from dataclasses import replace

    from bench.truthset.mm_entries import _number_format
    from mrs.io import read_basis

    plain = generate_set(CONFIGS["spant-dev"], tmp_path / "plain", n_spectra=1)
    full = generate_set(replace(CONFIGS["spant-dev"], fit_basis_mm="full"), tmp_path / "full", n_spectra=1)
    assert full["basis_file"].endswith("-fullmm.basis") and full["basis_names"] == plain["basis_names"]
    a, _ = read_nifti_mrs(tmp_path / "plain" / plain["spectra"][0]["files"]["nifti"])
    b, _ = read_nifti_mrs(tmp_path / "full" / full["spectra"][0]["files"]["nifti"])
    np.testing.assert_array_equal(a, b)
    # appended values follow the file's FMTBAS ('(6E13.5)' here), as LCModel reads them with it
    last_row = open(full["basis_file"]).read().rstrip("\n").splitlines()[-2]
    assert len(last_row) == 6 * 13
    assert _number_format(" FMTBAS = '(6E16.8)',") == (6, 16, 8)
    ours = read_lcmodel_basis(full["basis_file"])
    assert ours.names[:17] == spant.names and np.array_equal(ours.fids[:17], spant.fids)
    theirs = read_basis(full["basis_file"])
    for reader in (ours, theirs):
        ppm = 4.65 + np.fft.fftfreq(reader.fids.shape[1], reader.dwell_s) / reader.cf_mhz
        for name, where in (("MM09", 0.91), ("MM22", 2.25), ("MM38", 3.86), ("Lip13", 1.28)):
            spec = np.fft.fft(reader.fids[list(reader.names).index(name)])
            assert ppm[np.argmax(np.abs(spec))] == pytest.approx(where, abs=0.02), name


@pytest.mark.parametrize("index", [3, 18])
def test_file_fit_reports_the_snr_of_the_naa_peak(tmp_path, index):
    """qc.snr is the fitted NAA peak over the noise: on spectrum 3 (NAA SNR 111, a broad MM line and
    the baseline cancelling under NAA) it read 0 and the fit was called implausible; on 18 (SNR 47,
    the file's phase 97 degrees off) the real part read 0.42x."""
    from mrsmon.commands.fit import fit_file

    doc = generate_set(CONFIGS["spant-r4"], tmp_path, n_spectra=index + 1)
    s = doc["spectra"][index]
    result = fit_file(str(tmp_path / s["files"]["nifti"]), doc["basis_file"])[0].to_json()
    assert result["qc"]["fit_status"] == "ok"
    # the truth's SNR counts NAA alone, the fit's NAA + NAAG as one peak
    assert 0.8 * s["params"]["snr"] < result["qc"]["snr"] < 1.5 * s["params"]["snr"]
