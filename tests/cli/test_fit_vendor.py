"""`mrsmon fit` on vendor raw files: converted by spec2nii (as replay does) and fitted like any file."""

from pathlib import Path

import pytest

from mrsmon.commands import fit as fit_command

DATA = Path(__file__).parent.parent / "data"
BASIS = str(DATA / "lcmodel" / "press_30ms_3T.basis.gz")


def _fit(path: Path) -> dict:
    return fit_command.fit_file(str(path), BASIS)[0].to_json()


def test_siemens_rda_fits_as_its_nifti_mrs_conversion():
    rda = _fit(DATA / "vendor" / "siemens-rda" / "SVS_30.rda")
    nifti = _fit(DATA / "nifti_mrs" / "svs_30_spec2nii.nii.gz")  # spec2nii's conversion of the same file
    assert rda["qc"]["fit_status"] == "ok"
    for q in ("Glu/tCr", "tNAA/tCr", "tCho/tCr"):
        assert rda["ratios"][q] == pytest.approx(nifti["ratios"][q], rel=1e-6), q
    first = rda["qc"]["input"]["decisions"][0]
    assert (first["what"], first["action"]) == ("format", "converted") and "spec2nii rda" in first["message"]
    assert rda["qc"]["input"]["data"]["source"] == "SVS_30.rda"


def test_philips_sdat_fits_and_its_echo_time_is_checked():
    r = _fit(DATA / "vendor" / "philips-sdat" / "act" / "sub-01_PRESS_35_act.sdat")
    assert r["qc"]["fit_status"] == "ok"
    (te,) = [d for d in r["qc"]["input"]["decisions"] if d["what"] == "echo_time"]
    assert te["action"] == "warning" and te["data_te_s"] == pytest.approx(0.035)


def test_an_unconvertible_vendor_file_is_one_line(tmp_path):
    bad = tmp_path / "broken.rda"
    bad.write_bytes(b"not an rda")
    with pytest.raises(ValueError, match="spec2nii rda could not convert broken.rda"):
        fit_command.fit_file(str(bad), BASIS)


def test_a_vendor_water_reference_is_converted_too(tmp_path):
    """`--water ref.sdat` was refused ("not a spectrum file mrsmon can read") while the data file of the
    same pair was converted; both now go through spec2nii, and the fit is water-scaled (and
    eddy-current corrected by it) exactly as with spec2nii's own conversion of the reference."""
    from analysis.vendor import convert

    sdat = DATA / "vendor" / "philips-sdat"
    act, ref = sdat / "act" / "sub-01_PRESS_35_act.sdat", sdat / "ref" / "sub-01_PRESS_35_ref.sdat"
    r = fit_command.fit_file(str(act), BASIS, water_path=str(ref))[0].to_json()
    assert r["qc"]["fit_status"] == "ok" and r["water_scaled"] is True
    water_notes = [d for d in r["qc"]["input"]["decisions"] if d.get("target") == "water"]
    assert any(d["what"] == "format" and "spec2nii" in d["message"] for d in water_notes), water_notes
    converted = convert(str(ref), str(tmp_path)).metabolite[0]
    same = fit_command.fit_file(str(act), BASIS, water_path=str(converted))[0].to_json()
    for q in ("Glu/tCr", "tNAA/tCr", "Glu"):
        got, want = r["ratios"].get(q, r["conc"].get(q)), same["ratios"].get(q, same["conc"].get(q))
        assert got == pytest.approx(want, rel=1e-9), q
