"""Basis sets kept as spectrum files (mrs.io.spectra_basis), on the ISMRM fitting challenge's own files
(tests/data/fitting_challenge, CC BY-SA 4.0): a folder of jMRUI text files, a folder of LCModel .RAW
files that state no field or dwell, and one jMRUI file of several signals."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from mrs.basis import IncompatibleBasisFormat
from mrs.io import detect_format, read_basis, write_basis
from mrsmon.commands import fit as fit_command

FC = Path(__file__).resolve().parents[1] / "data" / "fitting_challenge"
JMRUI = FC / "basisset_JMRUI"
RAW = FC / "basisset_LCModel"
DATA = FC / "datasets_JMRUI" / "dataset1_WS.txt"
WATER = FC / "datasets_JMRUI" / "dataset1_nWS.txt"
NAMES = ("Cr", "Glu", "Mac", "NAA", "PCho", "PCr")
ACQ = {"spectrometer_frequency_mhz": 123.22, "dwell_time_s": 2.5e-4}


def _messages(basis) -> list[str]:
    return [n["message"] for n in basis.meta.get("input_notes", ())]


def test_a_jmrui_folder_is_a_basis():
    assert detect_format(JMRUI) == "jmrui"
    b = read_basis(JMRUI)
    assert b.names == NAMES
    assert b.fids.shape == (6, 2048)
    assert b.cf_mhz == pytest.approx(123.22) and b.dwell_s == pytest.approx(2.5e-4)
    assert b.meta["format"] == "jmrui" and any("conjugated on read" in m for m in _messages(b))


def test_a_raw_folder_needs_a_field_and_says_where_it_came_from(tmp_path):
    assert detect_format(RAW) == "lcmodel_raw"
    with pytest.raises(IncompatibleBasisFormat, match="state no field or dwell time") as err:
        read_basis(RAW)
    assert "\n" not in str(err.value)
    b = read_basis(RAW, assume_acq=ACQ)
    assert b.names == NAMES  # Mac.RAW's ID=Mac'' read as Mac
    assert b.cf_mhz == 123.22 and any("are assumed" in m for m in _messages(b))
    # a makebasis control file beside the files gives them (and wins over the data's)
    folder = tmp_path / "raw"
    shutil.copytree(RAW, folder)
    (folder / "makebasis.in").write_text(" $seqpar\n hzpppm=123.2, echot=30., seq='PRESS'\n $end\n"
                                         " $nmall\n deltat=0.00025, nunfil=2048\n $end\n")
    b2 = read_basis(folder, assume_acq={"spectrometer_frequency_mhz": 127.7, "dwell_time_s": 5e-4})
    assert b2.cf_mhz == 123.2 and b2.dwell_s == 2.5e-4
    assert any("from makebasis.in" in m for m in _messages(b2))


def test_the_two_folders_hold_the_same_signals_in_opposite_conventions():
    j, r = read_basis(JMRUI), read_basis(RAW, assume_acq=ACQ)
    scale = np.abs(r.fids).max()
    assert np.abs(j.fids - np.conj(r.fids)).max() < 1e-6 * scale  # the jMRUI files store the .RAW's conjugate
    assert np.abs(j.fids - r.fids).max() > 0.5 * scale


def test_other_files_in_the_folder_are_left_out_and_noted(tmp_path):
    folder = tmp_path / "jmrui"
    shutil.copytree(JMRUI, folder)
    (folder / "jmrui-text_output_summary.txt").write_text("VeSPA jMRUI text output summary\nmetabolites: 6\n")
    b = read_basis(folder)
    assert b.names == NAMES
    assert any("left out: jmrui-text_output_summary.txt" in m for m in _messages(b))


def _two_signal_file(path: Path) -> None:
    """One jMRUI file holding NAA and Cr (as jMRUI saves a basis of several signals)."""
    naa, cr = ((JMRUI / f"{m}.txt").read_text().splitlines() for m in ("NAA", "Cr"))
    start = next(i for i, line in enumerate(naa) if line.startswith("Signal 1 out of 1"))
    head = [line.replace("DatasetsInFile: 1", "DatasetsInFile: 2") for line in naa[:start]]
    head = [("SignalNames: NAA.txt;Cr.txt;" if line.startswith("SignalNames") else line) for line in head]
    body_cr = cr[next(i for i, line in enumerate(cr) if line.startswith("Signal 1 out of 1")) + 1:]
    path.write_text("\n".join(head + ["Signal 1 out of 2 in file"] + naa[start + 1:]
                              + ["Signal 2 out of 2 in file"] + body_cr) + "\n")


def test_one_jmrui_file_of_several_signals_is_a_basis(tmp_path):
    f = tmp_path / "basis.txt"
    _two_signal_file(f)
    b = read_basis(f)
    assert b.names == ("NAA", "Cr")
    one = read_basis(JMRUI)
    assert np.allclose(b.fids, one.fids[[one.index("NAA"), one.index("Cr")]])


@pytest.mark.parametrize("fmt", ["jmrui", "lcmodel_raw"])
def test_written_folders_read_back(tmp_path, fmt):
    b = read_basis(JMRUI)
    write_basis(b, tmp_path / fmt, fmt)
    back = read_basis(tmp_path / fmt, assume_acq=ACQ)
    assert back.names == b.names and back.cf_mhz == pytest.approx(b.cf_mhz) and back.dwell_s == pytest.approx(b.dwell_s)
    assert np.abs(back.fids - b.fids).max() < 1e-6 * np.abs(b.fids).max()


def test_mrsmon_fit_takes_either_folder_and_records_what_it_did():
    """The challenge's dataset 1 with the six-entry basis in both forms: the jMRUI folder is found
    mirrored and conjugated, the .RAW folder takes the data's field and dwell; the fits agree."""
    out = {}
    for name, basis in (("jmrui", JMRUI), ("raw", RAW)):
        lines = []
        res = fit_command.fit_file(str(DATA), str(basis), water_path=str(WATER), say=lines.append)
        assert len(res) == 1 and res[0].qc.fit_status == "ok", (name, res[0].qc.message)
        out[name] = res[0]
        rec = res[0].qc.input
        assert rec["data_conjugated"] is True
        assert rec["basis_conjugated"] is (name == "jmrui"), lines
    assert any("are assumed" in d["message"] for d in out["raw"].qc.input["decisions"])
    for q in ("Glu/tCr", "tNAA/tCr", "tCho/tCr"):
        assert out["jmrui"].ratios[q] == pytest.approx(out["raw"].ratios[q], rel=1e-4), q


def test_water_off_the_receiver_does_not_hide_the_orientation():
    """The challenge's dataset 23: residual water 4.5x the NAA peak at 4.9 ppm, 0.25 ppm off the
    receiver. The running median's residual on its flank matched the mirrored Cr 3.92 ppm singlet (114 noise SDs
    mirrored against 90 as stored: undetermined, and the fit both ways undecided too), so the file
    stayed mirrored and its fit was implausible. The water is now left out around its own peak."""
    from mrs.io import read_spectrum
    from mrs.orientation import data_orientation

    s = read_spectrum(FC / "datasets_JMRUI" / "dataset23_WS.txt")
    a = s.acq
    o = data_orientation(s.data, a["dwell_time_s"], a["spectrometer_frequency_mhz"], a["centre_ppm"])
    assert o.reversed is True, o.message
    assert o.score_mirrored > 20 * max(o.score, 1.0)


def test_a_rounding_between_the_files_is_one_grid_and_another_grid_is_refused(tmp_path):
    folder = tmp_path / "jmrui"
    shutil.copytree(JMRUI, folder)
    naa = folder / "NAA.txt"
    naa.write_text(naa.read_text().replace("TransmitterFrequency: 1.2322E8", "TransmitterFrequency: 1.23224E8"))
    b = read_basis(folder)
    assert b.cf_mhz == pytest.approx(123.22) and any("(rounding)" in m for m in _messages(b))
    naa.write_text(naa.read_text().replace("SamplingInterval: 2.5E-1", "SamplingInterval: 5E-1"))
    with pytest.raises(IncompatibleBasisFormat, match="different fields or dwell times"):
        read_basis(folder)


def test_a_nifti_mrs_folder_written_by_the_nifti_mrs_library_is_a_basis(tmp_path):
    """One NIfTI-MRS file per metabolite (spant's basis folders), here written by the NIfTI-MRS
    reference library (nifti_mrs.create_nmrs, as spec2nii writes files) from the challenge's basis."""
    from nifti_mrs.create_nmrs import gen_nifti_mrs

    src = read_basis(JMRUI)
    folder = tmp_path / "nii"
    folder.mkdir()
    for name, fid in zip(src.names, src.fids, strict=True):
        img = gen_nifti_mrs(fid.astype(np.complex64).reshape(1, 1, 1, -1), src.dwell_s, src.cf_mhz, no_conj=True)
        img.save(str(folder / f"{name}.nii.gz"))
    assert detect_format(folder) == "nifti_mrs"
    b = read_basis(folder)
    assert b.names == src.names and b.cf_mhz == pytest.approx(src.cf_mhz) and b.dwell_s == pytest.approx(src.dwell_s)
    assert np.abs(b.fids - src.fids).max() < 1e-6 * np.abs(src.fids).max()


@pytest.mark.parametrize("fmt", ["jmrui", "lcmodel_raw", "nifti_mrs"])
def test_names_that_collide_as_file_names_are_refused_not_overwritten(tmp_path, fmt):
    b = read_basis(JMRUI).subset(["NAA", "Cr"])
    clash = type(b)(("NAA/x", "NAA_x"), b.fids, b.dwell_s, b.cf_mhz, b.centre_ppm)
    with pytest.raises(IncompatibleBasisFormat, match="collide as file names"):
        write_basis(clash, tmp_path / fmt, fmt)
