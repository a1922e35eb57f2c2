"""Readers on files other tools wrote (tests/data, see its READMEs), and fits of them with no manual
conversion: LCModel .RAW/.BASIS/control (spant, LCModel makebasis, FID-A), NIfTI-MRS (spec2nii,
FSL-MRS, nifti_mrs), jMRUI text (FID-A), FSL-MRS basis folders (FSL-MRS basis_tools)."""

import json
from pathlib import Path

import numpy as np
import pytest

from mrs.io import DATA_FORMATS, read_basis, read_spectrum, write_spectrum
from mrs.io.spectrum import Spectrum, SpectrumFormatError
from mrs.orientation import basis_orientation, data_orientation
from mrsmon.commands import fit as fit_command

DATA = Path(__file__).resolve().parents[1] / "data"
LCM = DATA / "lcmodel"
SVS30 = {  # the same in vivo spectrum (suspect's SVS_30.rda) as four tools wrote it
    "spec2nii": DATA / "nifti_mrs" / "svs_30_spec2nii.nii.gz",
    "fslmrs": DATA / "nifti_mrs" / "svs_30_fslmrs_conj.nii.gz",
    "fida_raw": LCM / "svs_30_fida.RAW",
    "fida_jmrui": DATA / "jmrui" / "svs_30_fida_jmrui.txt",
}
BASIS_123 = LCM / "press_30ms_3T.basis.gz"
# Plausible in vivo ranges at 3T (de Graaf; LCModel's own fit of data.raw sits inside them)
PLAUSIBLE = {"tNAA/tCr": (0.9, 1.8), "Glu/tCr": (0.6, 1.6), "mI/tCr": (0.4, 1.4), "tCho/tCr": (0.1, 0.4)}


def fit_file(*args, **kwargs) -> list[dict]:
    """`mrsmon fit`'s results as its --json output shows them."""
    return [r.to_json() for r in fit_command.fit_file(*args, **kwargs)]


def _orientation(s: Spectrum):
    a = s.acq
    return data_orientation(s.data, a["dwell_time_s"], a["spectrometer_frequency_mhz"], a["centre_ppm"])


# ---- reading ------------------------------------------------------------------------------------

def test_lcmodel_basis_and_raw_from_the_lcmodel_test_set():
    b = read_basis(LCM / "3t.basis")
    assert len(b.names) == 17 and "NAA" in b.names and b.n_points == 1024
    assert b.cf_mhz == pytest.approx(127.7861) and b.dwell_s == pytest.approx(5e-4)
    o = basis_orientation(b.names, b.fids, b.dwell_s, b.cf_mhz, b.centre_ppm)
    assert o.reversed is False and abs(o.offset_ppm) < 0.005  # singlets at their ppm
    s = read_spectrum(LCM / "data.raw")  # no header: field and dwell from control.file beside it
    assert s.fmt == "lcmodel_raw" and s.data.shape == (1, 1, 1024)
    assert s.acq["spectrometer_frequency_mhz"] == pytest.approx(127.786142) and s.acq["dwell_time_s"] == 5e-4
    assert any("control.file" in n["message"] for n in s.notes)
    assert _orientation(s).reversed is False  # conjugated on read: the NIfTI-MRS convention


def test_gzipped_makebasis_basis_with_conc_scaling():
    b = read_basis(BASIS_123)
    assert b.cf_mhz == pytest.approx(123.199997) and b.dwell_s == pytest.approx(0.000207357807)
    assert b.n_points == 4944 and b.meta["te_s"] == pytest.approx(0.03)
    assert "TRAMP/(VOLUME*CONC)" in b.meta["input_notes"][0]["message"]


def test_lcmodel_conc_tramp_volume_scale_each_entry(tmp_path):
    from mrs.fit.toy import toy_basis
    from mrs.io import write_basis

    b = toy_basis(names=["NAA", "Cr"], n_points=512)
    write_basis(b, tmp_path / "a.BASIS")
    text = (tmp_path / "a.BASIS").read_text()
    cr = text.index("METABO = 'Cr'")  # Cr at CONC = 4, TRAMP = 2 (LCModel: x TRAMP / (VOLUME * CONC))
    text = text[:cr] + text[cr:].replace("CONC = 1.0", "CONC = 4.0", 1).replace("TRAMP = 1.0", "TRAMP = 2.0", 1)
    (tmp_path / "b.BASIS").write_text(text)
    a, c = read_basis(tmp_path / "a.BASIS"), read_basis(tmp_path / "b.BASIS")
    np.testing.assert_allclose(c.fids[0], a.fids[0], atol=1e-9)
    np.testing.assert_allclose(c.fids[1], 0.5 * a.fids[1], atol=1e-9)
    assert "Cr x0.5" in c.meta["input_notes"][0]["message"]


def test_fsl_mrs_converted_folder_holds_the_lcmodel_basis_in_our_convention():
    lcm, fsl = read_basis(LCM / "3t.basis"), read_basis(DATA / "fsl_basis" / "lcm_test_3t")
    assert set(fsl.names) <= set(lcm.names) and fsl.cf_mhz == lcm.cf_mhz and fsl.dwell_s == lcm.dwell_s
    for name in fsl.names:
        np.testing.assert_allclose(fsl.fids[fsl.names.index(name)], lcm.fids[lcm.names.index(name)],
                                   rtol=0, atol=1e-9 * np.abs(lcm.fids).max())


def test_one_spectrum_as_four_tools_wrote_it():
    s = {k: read_spectrum(p) for k, p in SVS30.items()}
    assert [s[k].fmt for k in SVS30] == ["nifti_mrs", "nifti_mrs", "lcmodel_raw", "jmrui_text"]
    ref = s["fslmrs"].data[0, 0]
    np.testing.assert_allclose(s["spec2nii"].data[0, 0], np.conj(ref), rtol=1e-6)
    np.testing.assert_allclose(s["fida_raw"].data[0, 0] * 8.0, ref, rtol=1e-5)  # VOLUME=8 undone
    np.testing.assert_allclose(s["fida_jmrui"].data[0, 0], np.conj(ref), rtol=1e-6)
    for k in SVS30:
        assert s[k].acq["dwell_time_s"] == pytest.approx(0.000833, rel=1e-3)
        assert s[k].acq["spectrometer_frequency_mhz"] == pytest.approx(123.2347, abs=1e-4)
    assert s["spec2nii"].acq["sequence"] == "PRESS" and s["fida_raw"].acq["echo_time_s"] == 0.03
    assert "PatientName" not in s["spec2nii"].header
    # The jMRUI header as FID-A writes it: SamplingInterval in ms, TransmitterFrequency in Hz, keys repeated
    assert s["fida_jmrui"].header["SamplingInterval"].startswith("8.33")


def test_orientation_of_the_four_files():
    got = {k: _orientation(read_spectrum(p)) for k, p in SVS30.items()}
    # spec2nii keeps the rda's (mirrored) samples; FID-A's jMRUI writer does not follow jMRUI's
    # convention; FSL-MRS's conjugated file and FID-A's .RAW are right.
    assert {k: o.reversed for k, o in got.items()} == {"spec2nii": True, "fslmrs": False, "fida_raw": False,
                                                        "fida_jmrui": True}
    for o in got.values():
        assert max(o.score, o.score_mirrored) > 3 * min(o.score, o.score_mirrored) + 5


def test_higher_dimensions_are_folded_or_selected():
    path = DATA / "nifti_mrs" / "svs_30_coil_dyn_edit.nii.gz"
    s = read_spectrum(path)
    assert s.data.shape == (4, 2, 1024) and s.acq["coils"] == 2
    assert any(n["action"] == "folded" and "DIM_EDIT" in n["message"] for n in s.notes)
    one = read_spectrum(path, select={"DIM_EDIT": 1})
    assert one.data.shape == (2, 2, 1024)
    with pytest.raises(SpectrumFormatError, match="no DIM_ISIS"):
        read_spectrum(path, select={"DIM_ISIS": 0})


def test_unreadable_files_are_one_sentence(tmp_path):
    (tmp_path / "x.txt").write_text("hello\n")
    (tmp_path / "y.RAW").write_text(" $NMID\n ID='y', FMTDAT='(2E15.6)'\n $END\n 1.0 2.0\n 3.0\n")
    with pytest.raises(SpectrumFormatError, match="not a spectrum file"):
        read_spectrum(tmp_path / "x.txt")
    with pytest.raises(SpectrumFormatError, match="pairs"):
        read_spectrum(tmp_path / "y.RAW")
    with pytest.raises(FileNotFoundError):
        read_spectrum(tmp_path / "missing.nii.gz")


@pytest.mark.parametrize("fmt,name", [("nifti_mrs", "x.nii.gz"), ("lcmodel_raw", "x.RAW"), ("jmrui_text", "x.txt")])
def test_every_data_format_round_trips(fmt, name, tmp_path):
    rng = np.random.default_rng(3)
    data = (rng.standard_normal((3, 1, 256)) + 1j * rng.standard_normal((3, 1, 256))).astype(np.complex64)
    acq = {"spectrometer_frequency_mhz": 123.2, "dwell_time_s": 2.5e-4, "echo_time_s": 0.03, "sequence": "PRESS"}
    write_spectrum(Spectrum(data, acq, fmt, name), tmp_path / name, fmt)
    back = read_spectrum(tmp_path / name)
    assert back.fmt == fmt and set(DATA_FORMATS) >= {fmt}
    np.testing.assert_allclose(back.data, data, rtol=1e-5, atol=1e-6)
    assert back.acq["spectrometer_frequency_mhz"] == pytest.approx(123.2)
    assert back.acq["dwell_time_s"] == pytest.approx(2.5e-4)


def test_a_jmrui_text_file_with_a_nan_row_is_refused_saying_where(tmp_path):
    lines = SVS30["fida_jmrui"].read_text().splitlines()
    rows = [i for i, line in enumerate(lines) if line[:1] and line[0] in "0123456789-+."]
    lines[rows[100]] = "NaN\tNaN\tNaN\tNaN"  # the 101st sample of the only dataset
    bad = tmp_path / "damaged.txt"
    bad.write_text("\n".join(lines) + "\n")
    assert np.isnan(read_spectrum(bad).data[0, 0, 100])  # read as a sample, not skipped ...
    # ... so the fit refuses it where it is (before: "2047 data rows are not a whole number of 2048-point datasets")
    with pytest.raises(SpectrumFormatError, match=r"NaN or infinite .*\(0, 0, 100\)"):
        fit_file(str(bad), str(BASIS_123))


def test_lcmodel_files_with_a_nan_sample_are_refused_saying_where(tmp_path):
    import gzip
    import re

    from mrs.basis import BasisError

    # .RAW: the 98th sample's real part (the numbers after $END are real, imaginary pairs)
    head, body = LCM.joinpath("svs_30_fida.RAW").read_text().rsplit("$END", 1)
    values = body.split()
    values[2 * 97] = "NaN"
    raw = tmp_path / "damaged.RAW"
    raw.write_text(head + "$END\n" + "\n".join(f"{a} {b}" for a, b in zip(values[0::2], values[1::2])) + "\n")
    # before: "expected (real, imag) pairs after $NMID, found 2047 numbers"
    with pytest.raises(SpectrumFormatError, match=r"NaN or infinite .*\(0, 0, 97\)"):
        fit_file(str(raw), str(BASIS_123))
    # .BASIS: one sample of the Ala entry written as Fortran writes an overflow
    text = gzip.decompress(BASIS_123.read_bytes()).decode()
    ala = text.index("METABO = 'Ala'")
    end = text.index("$END", ala) + len("$END")
    first = re.compile(r"[-+]?\d\.\d+E[-+]\d+").search(text, end)
    basis = tmp_path / "damaged.basis"
    basis.write_text(text[:first.start()] + "-Infinity" + text[first.end():])
    with pytest.raises(BasisError, match=r"'Ala' holds NaN or inf.* \(1 of 4944 points, the first at point 0\)"):
        read_basis(basis)


def test_a_truncated_nifti_mrs_file_is_a_one_line_error_naming_it(tmp_path):
    rng = np.random.default_rng(4)
    data = (rng.standard_normal((8, 1, 2048)) + 1j * rng.standard_normal((8, 1, 2048))).astype(np.complex64)
    acq = {"spectrometer_frequency_mhz": 123.2, "dwell_time_s": 2.5e-4, "echo_time_s": 0.03, "sequence": "PRESS"}
    write_spectrum(Spectrum(data, acq, "nifti_mrs", "whole.nii.gz"), tmp_path / "whole.nii.gz", "nifti_mrs")
    raw = (tmp_path / "whole.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(raw[: len(raw) // 2])  # the header is whole, the data are not
    with pytest.raises(SpectrumFormatError, match=r"^cut\.nii\.gz: its data cannot be read"):
        read_spectrum(tmp_path / "cut.nii.gz")


# ---- fitting them, no manual conversion ---------------------------------------------------------

def _plausible(r: dict) -> None:
    assert r["qc"]["fit_status"] == "ok", r["qc"]["message"]
    for ratio, (lo, hi) in PLAUSIBLE.items():
        assert lo <= r["ratios"][ratio] <= hi, (ratio, r["ratios"][ratio])


@pytest.fixture(scope="module")
def svs30_fits():
    return {k: fit_file(str(p), str(BASIS_123))[0] for k, p in SVS30.items()}


def test_the_four_files_fit_alike_once_read_correctly(svs30_fits):
    for k, r in svs30_fits.items():
        _plausible(r)
        rec = r["qc"]["input"]
        assert rec["data_conjugated"] is (k in ("spec2nii", "fida_jmrui")), k
        assert not rec["basis_conjugated"]
        field = [d for d in rec["decisions"] if d["what"] == "field"]  # HZPPPM 123.2 vs 123.2347
        assert field and field[0]["target"] == "basis" and "ppm axis" in field[0]["message"]
    ref = svs30_fits["fslmrs"]["ratios"]
    for r in svs30_fits.values():
        for q in ("tNAA/tCr", "Glu/tCr", "tCho/tCr"):
            assert r["ratios"][q] == pytest.approx(ref[q], rel=0.02)


def test_lcmodel_test_pair_fits_near_lcmodel():
    r = fit_file(str(LCM / "data.raw"), str(LCM / "3t.basis"))[0]
    _plausible(r)
    # LCModel 6.3 on the same pair (test_lcm/out_ref_build.ps): tNAA/tCr 1.306, Glu/tCr 1.171,
    # tCho/tCr 0.250. A different fitter with other macromolecule handling: within 35 %.
    for q, lcm in (("tNAA/tCr", 1.306), ("Glu/tCr", 1.171), ("tCho/tCr", 0.250)):
        assert r["ratios"][q] == pytest.approx(lcm, rel=0.35), q
    assert not [d for d in r["qc"]["input"]["decisions"] if d["action"] == "warning"]
    fsl = fit_file(str(LCM / "data.raw"), str(DATA / "fsl_basis" / "lcm_test_3t"))[0]
    _plausible(fsl)


def test_forcing_the_wrong_convention_is_recorded_and_spoils_the_fit(svs30_fits):
    r = fit_file(str(SVS30["spec2nii"]), str(BASIS_123), conjugate="no")[0]
    conj = [d for d in r["qc"]["input"]["decisions"] if d["what"] == "conjugation" and d["target"] == "data"]
    assert conj[0]["action"] == "warning" and "--conjugate auto would" in conj[0]["message"]
    good = svs30_fits["spec2nii"]
    assert r["qc"]["fit_status"] != "ok" or abs(r["ratios"]["tNAA/tCr"] / good["ratios"]["tNAA/tCr"] - 1) > 0.3


def test_auto_basis_from_a_spec2nii_header():
    r = fit_file(str(SVS30["spec2nii"]), "auto")[0]  # SequenceName '*svs_se', EchoTime 0.03
    _plausible(r)
    assert r["qc"]["input"]["basis"] == {}


def test_folded_dimensions_fit_like_the_single_spectrum(svs30_fits):
    r = fit_file(str(DATA / "nifti_mrs" / "svs_30_coil_dyn_edit.nii.gz"), str(BASIS_123))
    assert len(r) == 1 and r[0]["n_transients"] == 4
    for q in ("tNAA/tCr", "Glu/tCr"):
        assert r[0]["ratios"][q] == pytest.approx(svs30_fits["fslmrs"]["ratios"][q], rel=0.03)


def test_cli_says_each_decision_in_one_line(capsys):
    from mrsmon.cli import main

    assert main(["fit", str(SVS30["spec2nii"]), "--basis", str(BASIS_123), "--json"]) == 0
    captured = capsys.readouterr()
    row = json.loads(captured.out.splitlines()[0])
    lines = [ln for ln in captured.err.splitlines() if ln.startswith("mrsmon fit: data:")]
    assert any("mirrored" in ln and "conjugated (auto)" in ln for ln in lines)
    assert row["qc"]["input"]["data"] == {"source": "svs_30_spec2nii.nii.gz", "format": "nifti_mrs"}


@pytest.mark.parametrize("line", ["SamplingInterval: 0", "SamplingInterval: inf", "SamplingInterval: nan",
                                  "TransmitterFrequency: 0", "PointsInDataset: 0", "PointsInDataset: 2.5"])
def test_a_header_with_an_impossible_field_or_dwell_is_one_clear_line(tmp_path, line):
    """A jMRUI header's zero, infinite or NaN dwell or field ended in "float division by zero" or "cannot
    convert float NaN to integer" deep in the fit, and PointsInDataset 0 in "integer modulo by zero"."""
    src = DATA / "fitting_challenge" / "datasets_JMRUI" / "dataset1_WS.txt"
    key = line.split(":")[0]
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(line if ln.startswith(key + ":") else ln for ln in src.read_text().splitlines()))
    with pytest.raises(SpectrumFormatError, match=r"bad.txt: .*not a positive"):
        read_spectrum(bad)


def test_an_impossible_override_is_refused():
    src = DATA / "fitting_challenge" / "datasets_JMRUI" / "dataset1_WS.txt"
    with pytest.raises(SpectrumFormatError, match="--cf-mhz is 0.0, not a positive number"):
        fit_file(str(src), str(DATA / "fitting_challenge" / "basisset_JMRUI"),
                 acq_overrides={"spectrometer_frequency_mhz": 0.0})
