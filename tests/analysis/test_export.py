"""Export to MRS-BIDS: valid NIfTI-MRS, bit-exact round trip, events and described derivatives, idempotent."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
from nifti_mrs import validator

from analysis.export import ExportError, bids_label, export_session, load_nifti_mrs
from protocols.session_folder import SessionReader


@pytest.fixture(scope="module")
def exported(stored_session, tmp_path_factory):
    root = tmp_path_factory.mktemp("bids")
    return export_session(stored_session, root), root


def test_labels_are_bids_alphanumerics():
    assert bids_label("sim 00-7", "x") == "sim007" and bids_label("sub-P01", "x") == "P01"
    assert bids_label("ses-01", "x") == "01"
    assert bids_label("", "fallback") == "fallback"


def test_export_validates_and_round_trips_bit_exact(stored_session, exported):
    ses_dir, root = exported
    assert ses_dir == root / "sub-sim007" / "ses-01"
    mrs = ses_dir / "mrs"
    reader = SessionReader(stored_session)
    for suffix, seqs in (("svs", reader.metabolite_seqs()),
                         ("mrsref", reader.index["seq"][(reader.index["flags"] & 1) != 0])):
        path = mrs / f"sub-sim007_ses-01_{suffix}.nii.gz"
        img = nib.load(str(path))
        ext = json.loads(img.header.extensions[0].get_content())
        from nifti_mrs.nifti_mrs import NIFTI_MRS

        validator.validate_nifti_mrs(NIFTI_MRS(str(path)).image)  # raises when invalid
        assert (ext["dim_5"], ext["dim_6"]) == ("DIM_COIL", "DIM_DYN")
        assert img.shape == (1, 1, 1, reader.points, reader.coils, len(seqs))
        assert np.isclose(ext["SpectrometerFrequency"][0], reader.header["spectrometer_frequency_mhz"])
        transients, acq, _ = load_nifti_mrs(path)
        assert transients.dtype == np.complex64
        expected = np.stack([reader.transient(int(s)) for s in seqs])
        assert np.array_equal(transients, expected)  # bit-exact, same order
        assert acq["dwell_time_s"] == pytest.approx(reader.header["dwell_time_s"])
        assert ext["mrsmon_transients"]["seq"] == [int(s) for s in seqs]
    assert len(seqs) == 2  # the plan's water reference transients


def test_events_and_fit_derivatives(stored_session, exported):
    ses_dir, root = exported
    reader = SessionReader(stored_session)
    t0 = reader.t_s(int(reader.metabolite_seqs()[0]))
    with open(ses_dir / "mrs" / "sub-sim007_ses-01_events.tsv") as f:
        events = list(csv.DictReader(f, delimiter="\t"))
    assert list(events[0])[:4] == ["onset", "duration", "trial_type", "value"]
    start = next(e for e in events if e["trial_type"] == "infusion_start")
    assert float(start["onset"]) == pytest.approx(60.0 - t0, abs=1e-6)  # plan: infusion at 1 min
    deriv = root / "derivatives" / "mrsmon" / "sub-sim007" / "ses-01" / "mrs"
    with open(deriv / "sub-sim007_ses-01_fits.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    side = json.loads((deriv / "sub-sim007_ses-01_fits.json").read_text())
    assert len(rows) == len(reader.fits())
    assert all(col in side and side[col]["Description"] for col in rows[0])
    assert side["Glu_tCr_ratio"]["Units"] == "1" and side["onset"]["Units"] == "s"
    first = reader.fits()[0]
    assert float(rows[0]["Glu_tCr_ratio"]) == pytest.approx(first["ratios"]["Glu/tCr"], rel=1e-12)
    assert json.loads((root / "dataset_description.json").read_text())["BIDSVersion"]


def test_export_carries_the_kit_code_never_a_condition(exported):
    _, root = exported
    text = " ".join(p.read_text() for p in root.rglob("*") if p.is_file() and p.suffix in (".json", ".tsv"))
    assert "KIT-4711" in text
    assert "placebo" not in text.lower() and "naltrexone" not in text.lower()


def test_export_is_idempotent_and_byte_identical(session_copy, tmp_path):
    root = tmp_path / "bids"
    export_session(session_copy, root)
    files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    export_session(session_copy, root)  # unchanged session: nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes
    next(root.rglob("*_export.json")).unlink()  # force a full rewrite: same bytes
    export_session(session_copy, root)
    assert {p: p.read_bytes() for p in files if not p.name.endswith("_export.json")} == \
        {p: b for p, b in files.items() if not p.name.endswith("_export.json")}


def test_two_sessions_with_the_same_codes_are_refused(session_copy, stored_session, tmp_path):
    import shutil

    root = tmp_path / "bids"
    export_session(session_copy, root)
    other = tmp_path / "other"
    shutil.copytree(stored_session, other)
    h = json.loads((other / "session.json").read_text())
    (other / "session.json").write_text(json.dumps({**h, "session": "another"}))
    with pytest.raises(ExportError, match="unique"):
        export_session(other, root)


def test_nifti_without_coil_dimension_is_read(tmp_path):
    from nifti_mrs.create_nmrs import gen_nifti_mrs

    rng = np.random.default_rng(0)
    data = (rng.standard_normal((1, 1, 1, 512, 5)) + 1j * rng.standard_normal((1, 1, 1, 512, 5))).astype(np.complex64)
    img = gen_nifti_mrs(data, 2.5e-4, 123.2, dim_tags=["DIM_DYN", None, None], no_conj=True)
    img.save(tmp_path / "x.nii.gz")
    tr, acq, _ = load_nifti_mrs(tmp_path / "x.nii.gz")
    assert tr.shape == (5, 1, 512) and acq["coils"] == 1
    assert np.array_equal(tr[:, 0, :], data[0, 0, 0].T)
