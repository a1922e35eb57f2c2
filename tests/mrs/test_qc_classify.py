"""The block's verdict (mrs.qc.classify): a spectrum the model does not describe is implausible,
whatever else looks fine; a high-SNR spectrum with a small misfit is not."""

from pathlib import Path

from mrs.qc import classify
from mrsmon.commands.fit import fit_file

FC = Path(__file__).resolve().parents[1] / "data" / "fitting_challenge"
GOOD = {"conc": {"NAA": 10.0, "Glu": 9.0}, "crlb_pct": {"Glu": 6.0}, "naa_fwhm_hz": 6.0,
        "success": True, "message": ""}


def test_a_residual_far_above_the_noise_and_the_peak_is_implausible():
    status, reason = classify(**GOOD, snr=681.0, residual_rel=41.0)
    assert status == "implausible"
    assert "residual 41x the noise, 6 % of the NAA height" in reason


def test_small_misfits_stay_ok():
    # the truth sets' worst (3.9 noise SDs), and a phantom at SNR 1000 with a 2 % misfit
    assert classify(**GOOD, snr=152.0, residual_rel=3.9) == ("ok", "")
    assert classify(**GOOD, snr=1000.0, residual_rel=20.0) == ("ok", "")
    assert classify(**GOOD, snr=50.0) == ("ok", "")  # no residual given


def test_no_naa_signal_with_a_large_residual_is_a_reason_not_a_crash():
    status, reason = classify(**GOOD, snr=0.0, residual_rel=50.0)
    assert (status, reason) == ("implausible", "SNR 0.0 below 3")
    assert classify(**GOOD, snr=float("nan"), residual_rel=float("inf"))[0] == "implausible"


def test_the_challenges_lipid_dataset_is_called_implausible_for_its_residual():
    (r,) = fit_file(str(FC / "datasets_JMRUI" / "dataset28_WS.txt"), str(FC / "basisset_JMRUI"))
    assert r.qc.fit_status == "implausible"
    assert "the model does not describe this spectrum" in r.qc.message
    assert r.qc.residual_rel > 10
