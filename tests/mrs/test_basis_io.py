"""Basis readers/writers: one round-trip suite over the format table, plus hand-written files."""

import json

import numpy as np
import pytest

from mrs.basis import Basis, IncompatibleBasisFormat, ppm_axis, to_spectrum
from mrs.io import FORMATS, detect_format, read_basis, write_basis

CF = 123.2
DWELL = 1 / 2000
N = 1024


def _singlets_basis(centre_ppm=4.65) -> Basis:
    t = np.arange(N) * DWELL
    rows = []
    for ppm, protons, phase in [(2.008, 3, 0.0), (3.027, 3, 0.3), (3.913, 2, -1.0)]:
        f = (ppm - centre_ppm) * CF
        rows.append(protons * np.exp(1j * phase + 2j * np.pi * f * t - np.pi * 3 * t))
    return Basis(("NAA", "Cr", "CrCH2"), np.array(rows), DWELL, CF, centre_ppm,
                 {"sequence": "press", "te_s": 0.03, "linewidth_hz": 3.0})


OUT = {"lcmodel": "set.BASIS", "fsl": "set_fsl", "jmrui": "set_jmrui", "lcmodel_raw": "set_raw",
       "nifti_mrs": "set_nifti"}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_round_trip_gives_the_same_spectra(fmt, tmp_path):
    b = _singlets_basis()
    path = tmp_path / OUT[fmt]
    write_basis(b, path, fmt)
    assert detect_format(path) == fmt
    r = read_basis(path).subset(list(b.names))
    assert r.cf_mhz == pytest.approx(CF) and r.dwell_s == pytest.approx(DWELL) and r.n_points == N
    assert np.allclose(to_spectrum(r.fids), to_spectrum(b.fids), atol=1e-6 * np.abs(to_spectrum(b.fids)).max())


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_writer_rereferences_a_basis_centred_elsewhere(fmt, tmp_path):
    b = _singlets_basis(centre_ppm=3.0)
    write_basis(b, tmp_path / OUT[fmt], fmt)
    r = read_basis(tmp_path / OUT[fmt])
    assert r.centre_ppm == pytest.approx(4.65)
    spec = to_spectrum(r.fids[r.index("Cr")])
    ax = ppm_axis(N, DWELL, CF, r.centre_ppm)
    assert ax[np.argmax(np.abs(spec))] == pytest.approx(3.027, abs=2 / (N * DWELL) / CF)


def _lcmodel_text(spectrum: np.ndarray, ishift: int = 0, name: str = "NAA") -> str:
    """An LCModel .BASIS as LCModel's makebasis lays it out (namelists, then 3 complex pairs a line)."""
    head = f""" $SEQPAR
 FWHMBA = 0.0081,
 HZPPPM = {CF:.4f},
 ECHOT = 30.,
 SEQ = 'PRESS' $END
 $BASIS1
 IDBASI = 'hand written test basis',
 FMTBAS = '(6E13.5)',
 BADELT = {DWELL:.6E},
 NDATAB = {N} $END
 $NMUSED
 FILERAW = 'naa.raw',
 AUTOPH = F,
 PPMAPP = 0.5 -0.5 $END
 $BASIS
 ID = '{name}',
 METABO = '{name}',
 CONC = 1.,
 TRAMP = 1.,
 VOLUME = 1.,
 ISHIFT = {ishift} $END
"""
    flat = np.empty(2 * N)
    flat[0::2], flat[1::2] = spectrum.real, spectrum.imag
    rows = [" " + " ".join(f"{x:12.5E}" for x in flat[i:i + 6]) for i in range(0, flat.size, 6)]
    return head + "\n".join(rows) + "\n"


def test_reads_hand_written_lcmodel_file(tmp_path):
    # LCModel stores the DFT of its own (conjugate-convention) FID: positive bin k lies k * bw / N Hz
    # *below* the 4.65 ppm reference. A delta at bin k0 is therefore a singlet at 4.65 - k0 bw / (N cf).
    k0 = 166
    spec = np.zeros(N, complex)
    spec[k0] = N * 3.0  # DFT of a 3-proton singlet without decay: all its weight in one bin
    path = tmp_path / "hand.BASIS"
    path.write_text(_lcmodel_text(spec))
    b = read_basis(path)
    assert b.names == ("NAA",) and b.cf_mhz == pytest.approx(CF) and b.dwell_s == pytest.approx(DWELL)
    assert b.meta["te_s"] == pytest.approx(0.030) and b.meta["sequence"] == "PRESS"
    ours = to_spectrum(b.fids[0])
    ax = ppm_axis(N, DWELL, CF, b.centre_ppm)
    assert ax[np.argmax(np.abs(ours))] == pytest.approx(4.65 - k0 / (N * DWELL) / CF)
    assert b.fids[0, 0] == pytest.approx(3.0)  # area kept, upright (real, positive)


def test_lcmodel_ishift_rolls_the_spectrum(tmp_path):
    spec = np.zeros(N, complex)
    spec[100] = N
    (tmp_path / "a.BASIS").write_text(_lcmodel_text(spec, ishift=0))
    (tmp_path / "b.BASIS").write_text(_lcmodel_text(np.roll(spec, 7), ishift=7))
    assert np.allclose(read_basis(tmp_path / "a.BASIS").fids, read_basis(tmp_path / "b.BASIS").fids)


def test_truncated_lcmodel_data_is_a_clear_error(tmp_path):
    text = _lcmodel_text(np.ones(N, complex))
    path = tmp_path / "short.BASIS"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(IncompatibleBasisFormat, match="NDATAB says"):
        read_basis(path)


def test_encrypted_lcmodel_basis_is_refused(tmp_path):
    path = tmp_path / "enc.BASIS"
    path.write_text(_lcmodel_text(np.ones(N, complex)).replace(f"BADELT = {DWELL:.6E}", "BADELT = -5.0E-04"))
    with pytest.raises(IncompatibleBasisFormat, match="encrypted"):
        read_basis(path)


def test_reads_fsl_file_as_fsl_mrs_writes_it(tmp_path):
    # FSL-MRS conjugates its in-memory FID (the conjugate convention) on write, so the file holds the
    # NIfTI-MRS FID, under "basis" with basis_centre in MHz, plus a "meta" block (checked against a
    # folder FSL-MRS made: tests/mrs/test_io_formats.py).
    t = np.arange(N) * DWELL
    f = (3.027 - 4.65) * CF
    fid = 3 * np.exp(2j * np.pi * f * t - np.pi * 2 * t)
    stored = fid
    doc = {"basis": {"basis_re": stored.real.tolist(), "basis_im": stored.imag.tolist(), "basis_dwell": DWELL,
                     "basis_centre": CF, "basis_width": 2.0, "basis_name": "Cr"},
           "meta": {"time": "20240101_000000", "SimVersion": "test"}}
    folder = tmp_path / "fsl"
    folder.mkdir()
    (folder / "Cr.json").write_text(json.dumps(doc))
    b = read_basis(folder)
    assert b.names == ("Cr",)
    assert np.allclose(b.fids[0], fid)
    ax = ppm_axis(N, DWELL, CF, b.centre_ppm)
    assert ax[np.argmax(to_spectrum(b.fids[0]).real)] == pytest.approx(3.027, abs=1 / (N * DWELL) / CF)


def test_fsl_folder_with_mismatched_files_is_refused(tmp_path):
    b = _singlets_basis()
    write_basis(b, tmp_path / "fsl")
    doc = json.loads((tmp_path / "fsl" / "Cr.json").read_text())
    doc["basis"]["basis_dwell"] = DWELL / 2
    (tmp_path / "fsl" / "Cr.json").write_text(json.dumps(doc))
    with pytest.raises(IncompatibleBasisFormat, match="does not match"):
        read_basis(tmp_path / "fsl")


@pytest.mark.parametrize("make", ["missing", "text", "emptydir", "badjson"])
def test_unreadable_paths_give_one_sentence(make, tmp_path):
    p = tmp_path / "x"
    if make == "text":
        p.write_text("hello\n")
    elif make == "emptydir":
        p.mkdir()
    elif make == "badjson":
        p.mkdir()
        (p / "a.json").write_text("{\"foo\": 1}")
    with pytest.raises(IncompatibleBasisFormat) as info:
        read_basis(p)
    assert "\n" not in str(info.value)


def test_reads_makebasis_style_namelists(tmp_path):
    # LCModel's makebasis writes KEY=value without spaces, padded strings, repeat counts (20*997.0),
    # blank lines before $END and a negative ISHIFT; data are (6E13.5). Synthetic data here: a delta
    # that must land at 1.4667 ppm once rolled by -ISHIFT and conjugated.
    n, dwell, cf, ishift = 512, 1.0 / 3000, 300.0, -117
    k_rolled = int(round(-(1.4667 - 4.65) * cf * n * dwell))  # conjugate convention: positive bins are lower ppm
    spec = np.zeros(n, complex)
    spec[(k_rolled + ishift) % n] = n
    head = f""" $SEQPAR
 FWHMBA=  9.20454506E-03,
 HZPPPM=  {cf:.6f}    ,
 ECHOT=  30.0000000    ,
 SEQ='PRESS',

 $END
 $BASIS1
 IDBASI='                                        ',
 FMTBAS='(6E13.5)                                ',
 BADELT=  {dwell:.8E},
 NDATAB=       {n},

 $END
 $NMUSED
 FILRAW='/some/where/Ala/RAW                    ',
 AUTOPH=F,
 PPMAPP=  4.80000019    ,  4.40000010    ,
 PPMGAP= 20*997.000000      ,
 PPMSEP=  4.65000010    ,

 $END
 $BASIS
 ID='                    ',
 METABO='Ala   ',
 CONC=  100.000000    ,
 TRAMP=  1.00000000    ,
 VOLUME=  1.00000000    ,
 ISHIFT=      {ishift},

 $END
"""
    flat = np.empty(2 * n)
    flat[0::2], flat[1::2] = spec.real, spec.imag
    rows = ["".join(f"{x:13.5E}" for x in flat[i:i + 6]) for i in range(0, flat.size, 6)]
    (tmp_path / "mb.basis").write_text(head + "\n".join(rows) + "\n")
    b = read_basis(tmp_path / "mb.basis")
    assert b.names == ("Ala",) and b.cf_mhz == pytest.approx(cf) and b.meta["per_metabolite"]["Ala"]["CONC"] == 100
    ax = ppm_axis(n, dwell, cf, b.centre_ppm)
    assert ax[np.argmax(np.abs(to_spectrum(b.fids[0])))] == pytest.approx(1.4667, abs=1 / (n * dwell) / cf)


def test_lcmodel_basis_without_echo_time_is_read_and_says_so(tmp_path):
    # spant and makebasis write 'ECHOT = ,' (no value); the basis is usable, its TE unknown
    spec = np.zeros(N, complex)
    spec[166] = N
    path = tmp_path / "no_te.BASIS"
    path.write_text(_lcmodel_text(spec).replace("ECHOT = 30.,", "ECHOT =  ,"))
    b = read_basis(path)
    assert b.names == ("NAA",) and b.meta["te_s"] is None
    assert any(n["what"] == "echo_time" and "unknown" in n["message"] for n in b.meta["input_notes"])
    path.write_text(_lcmodel_text(spec).replace(" ECHOT = 30.,\n", ""))
    assert read_basis(path).meta["te_s"] is None


@pytest.mark.parametrize("damage", ["ndatab_empty", "badelt_text", "garbled_number", "ndatab_zero"])
def test_malformed_lcmodel_basis_gives_one_line(damage, tmp_path):
    text = _lcmodel_text(np.ones(N, complex))
    text = {"ndatab_empty": text.replace(f"NDATAB = {N}", "NDATAB = ,"),
            "badelt_text": text.replace(f"BADELT = {DWELL:.6E}", "BADELT = 'fast'"),
            "garbled_number": text.replace("CONC = 1.,", "CONC = 1.O,"),
            "ndatab_zero": text.replace(f"NDATAB = {N}", "NDATAB = 0")}[damage]
    path = tmp_path / "bad.BASIS"
    path.write_text(text)
    with pytest.raises(IncompatibleBasisFormat) as info:
        read_basis(path)
    assert "\n" not in str(info.value) and "bad.BASIS" in str(info.value)


def test_cli_reports_a_malformed_basis_in_one_line(tmp_path, capsys):
    from mrs.io import write_spectrum
    from mrs.io.spectrum import Spectrum
    from mrsmon.cli import main

    t = np.arange(N) * DWELL
    fid = np.exp(2j * np.pi * (2.008 - 4.65) * CF * t - np.pi * 4 * t)
    data = tmp_path / "d.nii.gz"
    write_spectrum(Spectrum(fid[None, None, :], {"spectrometer_frequency_mhz": CF, "dwell_time_s": DWELL},
                            "nifti_mrs", "test"), data, "nifti_mrs")
    path = tmp_path / "bad.BASIS"
    path.write_text(_lcmodel_text(np.ones(N, complex)).replace(f"NDATAB = {N}", "NDATAB = ,"))
    assert main(["fit", str(data), "--basis", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("mrsmon fit: error:") and "NDATAB" in err[0] and "Traceback" not in "\n".join(err)
