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
