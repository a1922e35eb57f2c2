"""Tolerance (field, dwell, points, centre, scaling) and orientation (conjugation of data and basis):
what `mrs.io.prepare` decides, that it records it, and that the fit then comes out right.
Spectra come from the toy multiplet basis (mrs.fit.toy), not from the simulator."""

import numpy as np
import pytest

from mrs.basis import Basis
from mrs.fit.toy import TYPICAL_MM, synth_fid, toy_basis
from mrs.io import read_basis, read_spectrum, write_basis, write_spectrum
from mrs.io.prepare import prepare
from mrs.io.record import InputRecord
from mrs.io.spectrum import Spectrum
from mrsmon.commands import fit as fit_command

CF, DWELL, N = 123.2, 1 / 4000, 2048
NAMES = ["NAA", "NAAG", "Cr", "PCr", "GPC", "PCh", "mI", "Glu", "Gln", "GABA", "GSH"]
TRUE_GLU = TYPICAL_MM["Glu"] / (TYPICAL_MM["Cr"] + TYPICAL_MM["PCr"])


def fit_file(*args, **kwargs) -> list[dict]:
    """`mrsmon fit`'s results as its --json output shows them."""
    return [r.to_json() for r in fit_command.fit_file(*args, **kwargs)]


def _data(cf=CF, dwell=DWELL, n=N, snr_scale=40.0, seed=0, names=NAMES, conc=TYPICAL_MM) -> np.ndarray:
    b = toy_basis(cf, dwell, n, names=names)
    clean = synth_fid(b, conc, lorentz_hz=3.0, gauss_hz=4.0, phase_rad=0.4, shift_hz=2.0)
    sd = float(np.abs(np.fft.fft(clean)).max() / (snr_scale * np.sqrt(n)))
    rng = np.random.default_rng(seed)
    return clean + sd * (rng.standard_normal(n) + 1j * rng.standard_normal(n))


def _spectrum(fid: np.ndarray, cf=CF, dwell=DWELL, centre=4.65) -> Spectrum:
    acq = {"spectrometer_frequency_mhz": cf, "dwell_time_s": dwell, "points": fid.size, "coils": 1,
           "centre_ppm": centre, "nucleus": "1H"}
    return Spectrum(np.asarray(fid, np.complex64).reshape(1, 1, -1), acq, "nifti_mrs", "synthetic")


def _files(tmp_path, fid, basis: Basis, basis_name="basis.BASIS", cf=CF, dwell=DWELL):
    write_spectrum(_spectrum(fid, cf, dwell), tmp_path / "data.nii.gz", "nifti_mrs")
    write_basis(basis, tmp_path / basis_name)
    return str(tmp_path / "data.nii.gz"), str(tmp_path / basis_name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The same data fitted with a basis on its own grid and field: nothing to convert."""
    data, basis = _files(tmp_path_factory.mktemp("ref"), _data(), toy_basis(CF, DWELL, N, names=NAMES))
    r = fit_file(data, basis)[0]
    assert r["qc"]["fit_status"] == "ok" and r["ratios"]["Glu/tCr"] == pytest.approx(TRUE_GLU, rel=0.15)
    assert not [d for d in r["qc"]["input"]["decisions"] if d["target"] == "basis" and d["what"] != "conjugation"]
    return r


def _same(r: dict, ref: dict, tol: float = 0.01) -> None:
    """A conversion that is right leaves the fit where the unconverted pair puts it."""
    assert r["qc"]["fit_status"] == "ok", r["qc"]["message"]
    for q in ("Glu/tCr", "tNAA/tCr", "tCho/tCr"):
        assert r["ratios"][q] == pytest.approx(ref["ratios"][q], rel=tol), q


def _decisions(r: dict, what: str) -> list[dict]:
    return [d for d in r["qc"]["input"]["decisions"] if d["what"] == what]


# ---- tolerance ----------------------------------------------------------------------------------

def test_basis_at_123_26_mhz_fits_data_at_123_2(tmp_path, reference):
    data, basis = _files(tmp_path, _data(), toy_basis(123.26, DWELL, N, names=NAMES))
    r = fit_file(data, basis)[0]
    _same(r, reference)
    (field,) = _decisions(r, "field")
    assert field["action"] == "converted" and field["basis_mhz"] == pytest.approx(123.26)


def test_lcmodel_badelt_rounding_is_never_an_error(tmp_path, reference):
    data, basis = _files(tmp_path, _data(), toy_basis(CF, DWELL, 4096, names=NAMES))
    text = open(basis).read()
    import re

    text = re.sub(r"BADELT = [^,\n]*", "BADELT = 0.000250000012", text)
    open(basis, "w").write(text)
    assert read_basis(basis).dwell_s == 0.000250000012
    r = fit_file(data, basis)[0]
    _same(r, reference)
    assert _decisions(r, "dwell")[0]["action"] == "rounding"
    assert _decisions(r, "points")[0]["action"] == "converted"  # 4096-point basis truncated to 2048


@pytest.mark.parametrize("basis_dwell,basis_n", [(1 / 8000, 8192), (1 / 3000, 1536), (DWELL, 1024)])
def test_other_bandwidths_and_lengths_are_converted(tmp_path, reference, basis_dwell, basis_n):
    data, basis = _files(tmp_path, _data(), toy_basis(CF, basis_dwell, basis_n, names=NAMES, intrinsic_lw_hz=3.0))
    r = fit_file(data, basis)[0]
    _same(r, reference, tol=0.05)  # (a basis of 3 Hz lines, not 1 Hz)
    whats = {d["what"] for d in r["qc"]["input"]["decisions"] if d["target"] == "basis"}
    if basis_dwell != DWELL:
        assert "dwell" in whats
    if basis_dwell > DWELL:
        assert "bandwidth" in whats  # 3000 Hz basis under 4000 Hz data


@pytest.mark.parametrize("scale", [1e-200, 1e150])
def test_basis_in_extreme_units_is_rescaled_and_keeps_its_sds(tmp_path, reference, scale):
    # the fit is the same in any units, but the covariance in units of 1e-200 underflowed: the
    # ratios had no SDs
    b = toy_basis(CF, DWELL, N, names=NAMES)
    data, basis = _files(tmp_path, _data(), Basis(b.names, b.fids * scale, DWELL, CF))
    r = fit_file(data, basis)[0]
    _same(r, reference, tol=1e-6)
    assert r["ratios_sd"]["Glu/tCr"] == pytest.approx(reference["ratios_sd"]["Glu/tCr"], rel=1e-6)
    (note,) = _decisions(r, "scaling")
    assert note["action"] == "converted" and note["target"] == "basis" and "rescaled" in note["message"]


def _raw_pair(folder, scale: float) -> tuple[str, str]:
    """An LCModel .RAW spectrum and its water reference (.H2O), both in units `scale` times ours."""
    t = np.arange(N) * DWELL
    acq = {"spectrometer_frequency_mhz": CF, "dwell_time_s": DWELL, "points": N, "coils": 1, "centre_ppm": 4.65,
           "nucleus": "1H"}
    folder.mkdir()
    for name, fid in (("d.RAW", _data()), ("w.H2O", 200.0 * np.exp(-np.pi * 6 * t))):
        write_spectrum(Spectrum((fid * scale).reshape(1, 1, -1), acq, "lcmodel_raw", "synthetic"), folder / name,
                       "lcmodel_raw")
    return str(folder / "d.RAW"), str(folder / "w.H2O")


# 5e27: only the data (peak 264, the water's 200) are beyond the range
@pytest.mark.parametrize("scale", [1e-200, 1e300, 5e27])
def test_data_beyond_single_precision_are_rescaled_with_their_water_reference(tmp_path, scale):
    # a text format holds any float: at 1e300 the samples became infinity in single precision, at
    # 1e-200 zero, and the fit failed ("SVD did not converge", or nothing found)
    basis = tmp_path / "b.BASIS"
    write_basis(toy_basis(CF, DWELL, N, names=NAMES), basis)
    data, water = _raw_pair(tmp_path / "ours", 1.0)
    ref = fit_file(data, str(basis), water_path=water)[0]
    data, water = _raw_pair(tmp_path / "far", scale)
    r = fit_file(data, str(basis), water_path=water)[0]
    assert ref["water_scaled"] and r["water_scaled"] and r["qc"]["fit_status"] == "ok"
    for name in ("Glu", "Cr", "NAA"):  # water-scaled mM: the data and the water scaled alike
        assert r["conc"][name] == pytest.approx(ref["conc"][name], rel=1e-4), name
    assert r["ratios_sd"]["Glu/tCr"] == pytest.approx(ref["ratios_sd"]["Glu/tCr"], rel=1e-4)
    notes = [(d["target"], d["message"]) for d in r["qc"]["input"]["decisions"] if d["what"] == "scaling"]
    assert any(t == "data" and "rescaled" in m for t, m in notes) and any(t == "water" for t, _ in notes)


@pytest.mark.parametrize("naa_name", ["N-acetylaspartate", "tNAA"])
def test_naa_linewidth_is_found_under_other_names(tmp_path, reference, naa_name):
    b = toy_basis(CF, DWELL, N, names=NAMES)
    names = tuple(naa_name if n == "NAA" else n for n in b.names)
    if naa_name == "tNAA":  # a basis holding NAA and NAAG as one entry
        names, fids = names[:1] + names[2:], np.vstack([b.fids[:1] + 0.15 * b.fids[1:2], b.fids[2:]])
    else:
        fids = b.fids
    data, basis = _files(tmp_path, _data(), Basis(names, fids, DWELL, CF))
    r = fit_file(data, basis)[0]
    ratio = r["qc"]["naa_fwhm_hz"] / reference["qc"]["naa_fwhm_hz"]
    # (a tNAA entry's peak holds NAAG's singlet 0.03 ppm away: measured 1.11x as wide)
    assert 0.95 < ratio < (1.2 if naa_name == "tNAA" else 1.05)


def test_basis_for_another_echo_time_or_sequence_is_a_warning():
    b = toy_basis(CF, DWELL, N, names=NAMES)
    spec = _spectrum(_data())
    spec = spec.with_data(spec.data, echo_time_s=0.020, sequence="STEAM")

    def decisions(meta: dict) -> dict:
        prep = prepare(spec, Basis(b.names, b.fids, DWELL, CF, meta=meta))
        return {d["what"]: d for d in prep.record.decisions if d["target"] == "basis"}

    d = decisions({"te_s": 0.030, "sequence": "PRESS"})
    assert d["echo_time"]["action"] == "warning" and "TE 30 ms" in d["echo_time"]["message"]
    assert "TE 20 ms" in d["echo_time"]["message"]
    assert d["sequence"]["action"] == "warning" and "PRESS" in d["sequence"]["message"]
    assert "STEAM" in d["sequence"]["message"]
    for quiet in ({"te_s": 0.0201, "sequence": "svs_st"}, {}):  # a rounding, a scanner's name; nothing stated
        d = decisions(quiet)
        assert "echo_time" not in d and "sequence" not in d


def test_basis_made_with_the_receiver_at_4_70_is_re_referenced():
    b = toy_basis(CF, DWELL, N, names=NAMES)
    labelled = Basis(b.names, b.fids, b.dwell_s, b.cf_mhz, 4.70)  # lines placed for 4.65, labelled 4.70
    rec = InputRecord()
    from mrs.io.prepare import prepare_basis

    fixed = prepare_basis(labelled, "auto", rec)
    assert fixed.centre_ppm == pytest.approx(4.65, abs=0.003)
    assert any(d["what"] == "centre" for d in rec.decisions)
    assert prepare_basis(b, "auto", InputRecord()).centre_ppm == 4.65  # a right one is left alone


@pytest.mark.parametrize("header_centre", [0.0, 4.7])
def test_data_centre_conventions(header_centre):
    prep = prepare(_spectrum(_data(), centre=header_centre), toy_basis(CF, DWELL, N, names=NAMES))
    centre = prep.spectrum.acq["centre_ppm"]
    if header_centre == 0.0:  # the singlets say the receiver sits at water
        assert centre == pytest.approx(4.65, abs=0.03)
        assert any(d["what"] == "centre" and d["target"] == "data" for d in prep.record.decisions)
    else:  # 0.05 ppm: within what the fit's shift takes, left as the file says
        assert centre == 4.7


def test_raw_without_field_or_dwell_takes_the_basis_and_says_so(tmp_path, reference):
    fid = _data()
    path = tmp_path / "x.RAW"
    path.write_text(" $NMID\n ID='x', FMTDAT='(2E15.6)'\n $END\n"
                    + "\n".join(f"{v.real:15.6E}{v.imag:15.6E}" for v in np.conj(fid)) + "\n")
    write_basis(toy_basis(CF, DWELL, N, names=NAMES), tmp_path / "b.BASIS")
    r = fit_file(str(path), str(tmp_path / "b.BASIS"))[0]
    _same(r, reference)
    assumed = [d for d in r["qc"]["input"]["decisions"] if d["action"] == "assumed"]
    assert len(assumed) == 2 and all("basis's" in d["message"] for d in assumed)
    with pytest.raises(ValueError, match="--cf-mhz and --dwell-s"):
        prepare(read_spectrum(path), None)


# ---- orientation --------------------------------------------------------------------------------

@pytest.mark.parametrize("mirrored", [False, True])
def test_data_orientation_both_ways(tmp_path, reference, mirrored):
    fid = _data()
    data, basis = _files(tmp_path, np.conj(fid) if mirrored else fid, toy_basis(CF, DWELL, N, names=NAMES))
    r = fit_file(data, basis)[0]
    _same(r, reference)
    rec = r["qc"]["input"]
    assert rec["data_conjugated"] is mirrored and rec["orientation"]["method"] == "singlets"
    (c,) = [d for d in _decisions(r, "conjugation") if d["target"] == "data"]
    assert c["action"] == ("conjugated" if mirrored else "none")


def test_forced_conjugation_is_done_and_recorded(tmp_path, reference):
    data, basis = _files(tmp_path, _data(), toy_basis(CF, DWELL, N, names=NAMES))
    r = fit_file(data, basis, conjugate="yes")[0]
    assert r["qc"]["input"]["data_conjugated"] is True
    assert "conjugation asked for" in [d for d in _decisions(r, "conjugation") if d["target"] == "data"][0]["message"]
    assert r["qc"]["fit_status"] != "ok" or abs(r["ratios"]["tNAA/tCr"] / reference["ratios"]["tNAA/tCr"] - 1) > 0.3


@pytest.mark.parametrize("mirrored", [False, True])
def test_without_singlets_the_fit_decides(mirrored):
    names = ["Glu", "Gln", "GABA"]  # no singlets, low SNR: the singlet test cannot tell
    fid = _data(names=names, snr_scale=3.0, seed=0)
    prep = prepare(_spectrum(np.conj(fid) if mirrored else fid), toy_basis(CF, DWELL, N, names=names))
    assert prep.record.orientation["method"] == "fit"
    assert prep.record.data_conjugated is mirrored


def test_mirrored_basis_is_detected_and_fixed(tmp_path, reference):
    b = toy_basis(CF, DWELL, N, names=NAMES)
    data, basis = _files(tmp_path, _data(), b.conjugated())
    r = fit_file(data, basis)[0]
    _same(r, reference)
    assert r["qc"]["input"]["basis_conjugated"] is True
    kept = fit_file(data, basis, conjugate_basis="no")[0]
    (c,) = [d for d in _decisions(kept, "conjugation") if d["target"] == "basis"]
    assert c["action"] == "warning" and "--conjugate-basis auto" in c["message"]


def test_basis_without_known_singlet_names_uses_the_pattern():
    b = toy_basis(CF, DWELL, N, names=NAMES)
    anon = Basis(tuple(f"m{i}" for i in range(len(b.names))), b.fids, b.dwell_s, b.cf_mhz)
    from mrs.orientation import basis_orientation

    assert basis_orientation(anon.names, anon.fids, DWELL, CF, 4.65).reversed is False
    assert basis_orientation(anon.names, np.conj(anon.fids), DWELL, CF, 4.65).reversed is True


def test_water_reference_follows_the_data(tmp_path):
    fid = np.conj(_data())
    t = np.arange(N) * DWELL
    water = np.conj(200.0 * np.exp(-np.pi * 6 * t))  # on resonance: its orientation cannot be seen
    write_spectrum(_spectrum(fid), tmp_path / "d.nii.gz", "nifti_mrs")
    write_spectrum(_spectrum(water), tmp_path / "w.nii.gz", "nifti_mrs")
    write_basis(toy_basis(CF, DWELL, N, names=NAMES), tmp_path / "b.BASIS")
    r = fit_file(str(tmp_path / "d.nii.gz"), str(tmp_path / "b.BASIS"), water_path=str(tmp_path / "w.nii.gz"))[0]
    assert r["water_scaled"] and r["qc"]["input"]["data_conjugated"]
    assert any(d["target"] == "water" and d["action"] == "conjugated" for d in r["qc"]["input"]["decisions"])


def test_old_mrsmon_fsl_folders_stored_the_conjugate_and_are_fixed(tmp_path):
    # mrsmon wrote FSL-MRS folders conjugated until the reader was checked against FSL-MRS's own
    b = toy_basis(CF, DWELL, N, names=NAMES)
    write_basis(b.conjugated(), tmp_path / "old", "fsl")
    assert read_basis(tmp_path / "old").meta["format"] == "fsl"
    prep = prepare(_spectrum(_data()), read_basis(tmp_path / "old"))
    assert prep.record.basis_conjugated
    for name in b.names:
        np.testing.assert_allclose(prep.basis.fids[prep.basis.names.index(name)], b.fids[b.names.index(name)],
                                   atol=1e-9)


def test_the_largest_finite_samples_are_rescaled_not_overflowed():
    # the modulus of 1e308 + 1e308j is infinite in float64: the exponent comes from the larger part
    from mrs.io.spectrum import single_precision

    data, (done,) = single_precision(np.array([1e308 + 1e308j, 1e300 - 1e300j]))
    assert np.all(np.isfinite(data)) and data.dtype == np.complex64 and done["exponent"] == -1024
    assert data[0] == pytest.approx(np.ldexp(1e308, -1024) * (1 + 1j), rel=1e-6)


def test_a_file_with_nan_or_infinite_samples_is_refused_saying_where(tmp_path):
    from mrs.io.spectrum import SpectrumFormatError

    for bad in (np.nan, np.inf):
        fid = _data()
        fid[40] = bad
        data, basis = _files(tmp_path, fid, toy_basis(CF, DWELL, N, names=NAMES))
        # before, the orientation's water search failed first: "SVD did not converge"
        with pytest.raises(SpectrumFormatError, match=r"1 of 2048 samples are NaN or infinite .*\(0, 0, 40\)"):
            fit_file(data, basis)
