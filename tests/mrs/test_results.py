"""The typed block result: JSON round trip, reading version-1 rows, and docs/results.md generated from it."""

from __future__ import annotations

import json
from pathlib import Path

from mrs.results import (
    SCHEMA_VERSION,
    Alarm,
    BlockQC,
    BlockResult,
    BlockSpectrum,
    EventRecord,
    TransientRow,
    schema_markdown,
)

DOC = Path(__file__).parents[2] / "docs" / "results.md"


def _result() -> BlockResult:
    return BlockResult(block=3, t_s=224.0, t_start_s=192.0, t_end_s=256.0, n_transients=31, n_rejected=1,
                       rejected={"motion": 1}, conc={"Glu": 9.8, "Gln": None}, sd={"Glu": 0.4},
                       crlb_pct={"Glu": 4.1}, ratios={"Glu/tCr": 1.03}, ratios_sd={"Glu/tCr": 0.04},
                       water_scaled=True, revision=1, latency_ms=27.0, session="s1",
                       qc=BlockQC(snr=45.2, fit_status="ok", reference="session", coils_excluded=(2,),
                                  alarms=(Alarm("drift", "amber", "Frequency drifting +2.4 Hz/min (limit 2)"),)),
                       spectrum=BlockSpectrum([4.0, 3.0], [1.0, 2.0], [1.0, 2.0], [0.0, 0.0], {"Glu": [0.1, 0.2]}))


def test_json_round_trip_is_exact():
    r = _result()
    obj = json.loads(json.dumps(r.to_json(), allow_nan=False))
    assert obj["schema"] == SCHEMA_VERSION and obj["qc"]["alarms"][0]["severity"] == "amber"
    assert BlockResult.from_json(obj) == r
    compact = r.to_json(components=False)["spectrum"]
    assert "components" not in compact and BlockResult.from_json(r.to_json(spectrum=False)).spectrum is None
    t = TransientRow(5, 10.0, 0.25, -1.0, "motion", 0)
    assert TransientRow.from_json(t.to_json()) == t
    e = EventRecord("infusion_start", 60.0, 60_000_000_000, 7, "scanner", {"dose_mg_per_kg": 0.5}, "")
    assert EventRecord.from_json(e.to_json()) == e


def test_version_1_rows_are_read_and_get_their_fit_status_alarm():
    v1 = {"block": 2, "t_s": 1.0, "qc": {"fit_status": "failed", "message": "diverged", "alarms": ["drift"]},
          "pub_seq": 9}
    r = BlockResult.from_json(v1)
    assert [a.name for a in r.qc.alarms] == ["fit_failed", "drift"]
    assert r.qc.alarms[0].severity == "red" and "diverged" in r.qc.alarms[0].reason
    assert BlockResult.from_json({"block": 0}).qc.fit_status == "failed"  # no status: not data


def test_docs_results_md_holds_the_generated_field_tables():
    assert schema_markdown() in DOC.read_text(), "regenerate the tables: python -m mrs.results"


def test_an_event_stored_with_fields_of_the_wrong_type_reads_without_failing():
    e = EventRecord.from_json({"kind": "vitals", "t_s": "soon", "t_ns": 1.5, "seq": True, "value": [1, 2],
                               "note": None, "id": 7})
    assert (e.kind, e.t_s, e.t_ns, e.seq, e.value, e.note, e.id) == ("vitals", None, None, None, {}, "", None)


def test_events_sort_by_session_time_with_untimed_ones_last():
    from mrs.results import event_order

    events = [EventRecord("note", None), EventRecord("infusion_stop", 900.0), EventRecord("infusion_start", 60.0)]
    assert [e.kind for e in sorted(events, key=event_order)] == ["infusion_start", "infusion_stop", "note"]
