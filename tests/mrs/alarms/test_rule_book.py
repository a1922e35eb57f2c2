"""The alarm rule book (mrs/qc.py): every rule in mrs/alarms/ is found, thresholds come from the plan only,
and each shipped rule raises its sentence exactly beyond its limit."""

from __future__ import annotations

import pytest

from mrs import qc
from mrs.results import BlockQC, BlockResult
from protocols.plan import Alarms

LIMITS = vars(Alarms())


def block(**qc_fields) -> BlockResult:
    fields = {"fit_status": "ok", "snr": 40.0, "naa_fwhm_hz": 6.0, "drift_hz_per_min": 0.3, "max_jump_hz": 0.2,
              **qc_fields}
    return BlockResult(block=4, n_transients=32, crlb_pct={"Glu": 5.0}, qc=BlockQC(**fields))


def names(result, thresholds=LIMITS, history=()):
    return [a.name for a in qc.evaluate_alarms(result, thresholds, history)]


def test_every_rule_file_is_in_the_book_with_a_plan_threshold_or_none():
    assert {r.name for r in qc.RULES} >= {"fit_failed", "fit_implausible", "motion", "drift", "jump", "naa_fwhm",
                                          "glu_crlb"}
    for rule in qc.RULES:
        assert rule.severity in qc.SEVERITIES
        assert rule.threshold is None or rule.threshold in LIMITS, f"{rule.name}: no default in protocols.plan"
    assert [r.severity for r in qc.RULES] == sorted((r.severity for r in qc.RULES), key=qc.SEVERITIES.index)


def test_a_clean_block_raises_nothing():
    assert names(block()) == []


@pytest.mark.parametrize("result, name, words", [
    (block(drift_hz_per_min=-2.6), "drift", "Frequency drifting -2.6 Hz/min (limit 2)"),
    (block(max_jump_hz=3.4), "jump", "Frequency jump of 3.4 Hz in block 4 (limit 3)"),
    (block(naa_fwhm_hz=11.5), "naa_fwhm", "Lines broadening: NAA width 11.5 Hz (limit 10)"),
    (block().replace(crlb_pct={"Glu": 18.0}), "glu_crlb", "Glutamate uncertain: CRLB 18% (limit 15%)"),
    (block().replace(crlb_pct={"Glu": None}), "glu_crlb", "CRLB not finite"),
    (block(fit_status="failed", message="diverged"), "fit_failed", "Fit failed on block 4: diverged"),
    (block(fit_status="implausible", message="SNR 2.0 below 3"), "fit_implausible", "implausible: SNR 2.0"),
    (block().replace(n_transients=24, n_rejected=8, rejected={"motion": 8}), "motion", "Motion: 8 of 32"),
])
def test_each_rule_raises_its_sentence_beyond_its_limit(result, name, words):
    alarms = qc.evaluate_alarms(result, LIMITS)
    assert [a.name for a in alarms] == [name]
    assert words in alarms[0].reason


def test_at_the_limit_nothing_is_raised_and_red_comes_first():
    assert names(block(drift_hz_per_min=2.0, max_jump_hz=3.0, naa_fwhm_hz=10.0)) == []
    assert names(block().replace(n_transients=25, n_rejected=7, rejected={"motion": 7})) == []
    both = block(fit_status="failed", drift_hz_per_min=5.0)
    assert [a.severity for a in qc.evaluate_alarms(both, LIMITS)] == ["red", "amber"]


def test_thresholds_come_from_the_plan_only():
    drifting = block(drift_hz_per_min=2.6)
    assert names(drifting, {**LIMITS, "drift_hz_per_min": 3.0}) == []
    assert names(drifting, {}) == []  # no plan threshold: the rule is not evaluated
    assert names(block(fit_status="failed"), {}) == ["fit_failed"]  # a rule without a threshold still is


def test_a_rule_file_without_a_rule_is_refused(monkeypatch, tmp_path):
    import sys

    import mrs.alarms

    (tmp_path / "not_a_rule.py").write_text("x = 1\n")
    monkeypatch.setattr(mrs.alarms, "__path__", [str(tmp_path)])
    monkeypatch.delitem(sys.modules, "mrs.alarms.not_a_rule", raising=False)
    with pytest.raises(TypeError, match="must define RULE"):
        qc._load_rules()
    monkeypatch.delitem(sys.modules, "mrs.alarms.not_a_rule", raising=False)
