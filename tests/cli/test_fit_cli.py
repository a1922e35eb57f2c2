"""`mrsmon fit` on small NIfTI-MRS files written with nifti_mrs's gen_nifti_mrs(no_conj=True)."""

import json

import numpy as np
import pytest
from nifti_mrs.create_nmrs import gen_nifti_mrs

from mrs.fit.toy import TYPICAL_MM, synth_fid, toy_basis, toy_coil_transients
from mrs.io import write_basis
from mrsmon.cli import main

CF = 123.25
DWELL = 1 / 4000
N = 2048
NAMES = ["NAA", "NAAG", "Cr", "PCr", "GPC", "PCh", "mI", "Glu", "Gln", "GABA", "GSH"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fitcli")
    basis = toy_basis(CF, DWELL, N, names=NAMES)
    write_basis(basis, d / "basis", "fsl")
    rng = np.random.default_rng(0)
    clean = synth_fid(basis, TYPICAL_MM, lorentz_hz=3.0, gauss_hz=4.0)
    noise_sd = float(np.fft.fft(clean).real.max() / (20.0 * np.sqrt(N)))
    dyn = np.stack([toy_coil_transients(clean, 2, noise_sd, rng, np.array([1.0, 0.5j])) for _ in range(8)])
    data = np.transpose(dyn, (2, 1, 0))[None, None, None]  # (1,1,1, points, coils, dyn)
    img = gen_nifti_mrs(data.astype(np.complex64), DWELL, CF, dim_tags=["DIM_COIL", "DIM_DYN", None],
                        no_conj=True)
    img.add_hdr_field("EchoTime", 0.03)
    img.add_hdr_field("RepetitionTime", 2.0)
    img.save(str(d / "dyn.nii.gz"))
    single = gen_nifti_mrs((clean + noise_sd * 0.2 * rng.standard_normal(N)).astype(np.complex64)
                           .reshape(1, 1, 1, N), DWELL, CF, no_conj=True)
    single.save(str(d / "single.nii.gz"))
    return d


def _json_lines(capsys) -> list[dict]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_fit_blocks_of_transients(files, capsys):
    assert main(["fit", str(files / "dyn.nii.gz"), "--basis", str(files / "basis"), "--block", "4", "--json"]) == 0
    rows = _json_lines(capsys)
    assert [r["block"] for r in rows] == [0, 1]
    for r in rows:
        assert r["qc"]["fit_status"] == "ok", r["qc"]["message"]
        assert r["n_transients"] + r["n_rejected"] == 4
        assert "spectrum" not in r
        true = TYPICAL_MM["Glu"] / (TYPICAL_MM["Cr"] + TYPICAL_MM["PCr"])
        assert abs(r["ratios"]["Glu/tCr"] - true) < 3 * r["ratios_sd"]["Glu/tCr"] + 0.05 * true
    assert rows[1]["t_s"] > rows[0]["t_s"]


def test_block_one_fits_each_dynamic(files, capsys):
    assert main(["fit", str(files / "dyn.nii.gz"), "--basis", str(files / "basis"), "--block", "1", "--json",
                 "--spectra"]) == 0
    rows = _json_lines(capsys)
    assert len(rows) == 8 and all(len(r["spectrum"]["ppm"]) > 100 for r in rows)


def test_single_spectrum_without_coil_or_dynamic_dims(files, capsys):
    assert main(["fit", str(files / "single.nii.gz"), "--basis", str(files / "basis"), "--json"]) == 0
    rows = _json_lines(capsys)
    assert len(rows) == 1 and rows[0]["qc"]["fit_status"] == "ok"
    # within 3 of its own CRLBs (3.5 %; a fixed 5 % was 1.5 CRLB and failed on a 2-SD draw when the
    # free lineshape kernel came in: 1.094 before, 1.124 with it, truth 1.053)
    sd = rows[0]["ratios_sd"]["NAA/tCr"]
    assert rows[0]["ratios"]["NAA/tCr"] == pytest.approx(TYPICAL_MM["NAA"] / 9.5, abs=3 * sd)
    assert rows[0]["ratios_sd"]["NAA/tCr"] < 0.05


def test_table_output_and_clear_errors(files, capsys):
    assert main(["fit", str(files / "dyn.nii.gz"), "--basis", str(files / "basis")]) == 0
    assert "Glu/tCr" in capsys.readouterr().out
    assert main(["fit", str(files / "missing.nii.gz"), "--basis", str(files / "basis")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err
    # auto basis needs a sequence in the header: a one-line explanation, not a traceback
    assert main(["fit", str(files / "single.nii.gz"), "--basis", "auto"]) == 2
    assert "SequenceName" in capsys.readouterr().err
