"""Refit from the preprocessing cache gives the numbers a refit from raw.log gives, for any block settings;
a damaged cache is never trusted; the pipeline writes the cache and resumes from it after a restart."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from study_plans import MINI

from agent.pipeline import Pipeline
from agent.store import SessionWriter
from analysis.refit import refit
from protocols import prepared_cache as prepcache
from protocols.plan import plan_from_dict
from protocols.session_folder import SessionReader


@pytest.fixture(scope="module")
def raw_session(tmp_path_factory):
    """A 3-minute, 2-coil session as stored by ingest (raw.log only: no fits, no cache)."""
    from analysis.simulate_study import write_session

    folder = tmp_path_factory.mktemp("cache") / "mini-c1"
    write_session(folder, plan_from_dict(MINI, source="tests/agent"), seed=3, coils=2, subject="sim 01",
                  session_code="ses-01", start_time_ns=1_700_000_000_000_000_000, fit=False)
    return folder


@pytest.fixture
def session(raw_session, tmp_path):
    dst = tmp_path / raw_session.name
    shutil.copytree(raw_session, dst)
    return dst


def _rows(folder, name):
    return SessionReader(folder).fits(name)


def _assert_same(a, b, rtol=1e-6):
    assert len(a) == len(b) and a
    for x, y in zip(a, b, strict=True):
        assert (x["block"], x["t_s"], x["n_transients"], x["rejected"]) == (y["block"], y["t_s"],
                                                                          y["n_transients"], y["rejected"])
        for k, v in x["conc"].items():
            assert v == pytest.approx(y["conc"][k], rel=rtol, abs=1e-12), k


def _source(out):
    return json.loads((out / "settings.json").read_text())["preprocessing"]


@pytest.mark.parametrize("kwargs", [{}, {"block": 5}, {"window": 12, "step": 4}])
def test_refit_from_the_cache_equals_refit_from_raw(session, kwargs):
    first = refit(session, **kwargs)  # no cache yet: from raw, and writes one
    assert _source(first)["source"] == "raw" and _source(first)["cache_written"]
    assert (session / prepcache.CACHE_NAME).exists()
    cached = refit(session, **kwargs)
    assert _source(cached) == {"source": "cache", "cache": "prepared.bin", "cache_unused_because": None,
                               "cache_written": False}
    raw = refit(session, use_cache=False, **kwargs)
    assert _source(raw)["source"] == "raw"
    _assert_same(_rows(session, cached.name), _rows(session, raw.name))
    _assert_same(_rows(session, first.name), _rows(session, raw.name), rtol=0)


def test_a_torn_cache_is_not_trusted(session):
    refit(session, block=8)
    path = session / prepcache.CACHE_NAME
    path.write_bytes(path.read_bytes()[:-5000])  # a crash while the last transient was written
    out = refit(session, block=8)
    src = _source(out)
    assert src["source"] == "raw" and "covers" in src["cache_unused_because"] and not src["cache_written"]


def test_a_cache_from_other_settings_is_not_used(session):
    refit(session)
    plan = json.loads((session / "plan.json").read_text())
    plan["alarms"] = {**(plan.get("alarms") or {}), "jump_hz": 9.0}  # an alarm threshold: processing unchanged
    (session / "plan.json").write_text(json.dumps(plan))
    assert _source(refit(session))["source"] == "cache"
    plan["outliers"] = {"max_jump_hz": 9.0}  # a rejection setting: the per-transient results change
    (session / "plan.json").write_text(json.dumps(plan))
    assert "settings" in _source(refit(session))["cache_unused_because"]


# ------------------------------------------------------------------------------ the pipeline
def _notes(reader, seqs):
    folder = str(reader.folder)
    events = {e["seq"] for e in reader.events() if e.get("seq") is not None}
    out = []
    for seq in seqs:
        if seq in events:
            out.append({"kind": "event", "session": "s", "seq": seq, "folder": folder})
        elif seq in reader._row_of:
            e = reader.entry(seq)
            out.append({"kind": "transient", "session": "s", "seq": seq, "folder": folder,
                        "offset": int(e["offset"]), "t_ns": int(e["t_ns"]), "flags": reader.flags(seq)})
    return out


def _run(folder, seqs, end):
    published = []
    pipe = Pipeline(lambda t, o: published.append((t, o)))
    reader = SessionReader(folder)
    for note in _notes(reader, seqs):
        pipe._handle(note)
    if end:
        pipe._handle({"kind": "end", "session": "s", "seq": -1, "folder": str(folder)})
    pipe.close()
    return [o for t, o in published if t == "result"]


def test_the_pipeline_writes_the_cache_and_a_refit_uses_it(session):
    top = int(SessionReader(session).end["seq"])
    _run(session, range(1, top), end=True)
    out = refit(session)
    assert _source(out)["source"] == "cache"
    _assert_same(_rows(session, out.name), SessionReader(session).fits())


def _store(src, dst, lo, hi):
    """Append what `src` holds for seqs lo..hi-1 to session folder `dst`, as ingest would."""
    r = SessionReader(src)
    w = SessionWriter(dst, r.header, r.plan, fsync=False)
    events = {e["seq"]: e for e in r.events() if e.get("seq") is not None}
    for seq in range(lo, hi):
        if seq in events:
            w.append_event(events[seq])
        elif seq in r._row_of:
            e = r.entry(seq)
            w.append_transient(seq, int(e["t_ns"]), int(e["scan"]), r.flags(seq), np.array(r.transient(seq)))
    w.commit()
    w.close()


CRASH_SEQ = 60  # the first pipeline dies before this transient


def _crash_and_restart(raw_session, tmp_path, monkeypatch, while_down=lambda session: None):
    """The session processed whole, and again with the pipeline dying at CRASH_SEQ and a new one
    finishing it (`while_down` runs in between). Returns (whole, session, fits before the restart,
    transients processed from raw data after it, results published after it)."""
    whole = tmp_path / "whole"
    shutil.copytree(raw_session, whole)
    top = int(SessionReader(whole).end["seq"])
    _run(whole, range(1, top), end=True)

    session, cut = tmp_path / "s", CRASH_SEQ
    _store(raw_session, session, 1, cut)
    _run(session, range(1, cut), end=False)  # the pipeline dies here
    while_down(session)
    _store(raw_session, session, cut, top)   # the agent restarts, the rest of the session arrives
    n_before = len(SessionReader(session).fits())
    from mrs.pipeline.transients import TransientRunner

    calls = []  # transients processed from raw data (not replayed from the cache)
    real = TransientRunner._process
    monkeypatch.setattr(TransientRunner, "_process", lambda self, *a: calls.append(a[0]) or real(self, *a))
    published = _run(session, range(cut, top), end=True)  # a new pipeline: reopens, then the rest
    return whole, session, n_before, calls, published


def test_a_restarted_pipeline_resumes_from_the_cache(raw_session, tmp_path, monkeypatch):
    whole, session, n_before, calls, published = _crash_and_restart(raw_session, tmp_path, monkeypatch)
    assert calls and min(calls) >= CRASH_SEQ - 8  # at most the few transients still pending at the crash
    assert [b["block"] for b in published if not b.get("revision")] == list(
        range(n_before, len(SessionReader(whole).fits())))
    # the session reference is fixed after the restart (at 8 blocks, or at the end of a shorter
    # session): the first blocks are revised, once each
    revised = [b["block"] for b in published if b.get("revision")]
    assert revised == list(range(min(8, len(SessionReader(whole).fits()))))
    # the same numbers: the running reference and the outlier history come from the cache, the fits are redone
    _assert_same(SessionReader(session).fits(), SessionReader(whole).fits(), rtol=1e-6)
    rows = [json.loads(x)["seq"] for x in (session / "transients.jsonl").read_text().splitlines()]
    assert rows == sorted(set(rows)) and len(rows) == len(SessionReader(session).metabolite_seqs())
    assert _source(refit(session))["source"] == "cache"


def _as_older_format(path):
    """Mark a cache as written by older software (format version 2)."""
    data = bytearray(path.read_bytes())
    data[4:6] = (2).to_bytes(2, "little")
    path.write_bytes(bytes(data))


def test_a_cache_of_an_older_format_is_rebuilt_by_refit(session):
    refit(session)
    _as_older_format(session / prepcache.CACHE_NAME)
    src = _source(refit(session))
    assert src["source"] == "raw" and src["cache_unused_because"] == prepcache.OTHER_VERSION
    assert src["cache_written"]  # replaced: a cache of another version is never appended to
    assert _source(refit(session))["source"] == "cache"


def test_a_cache_of_an_older_format_is_rebuilt_by_a_restarted_pipeline(raw_session, tmp_path, monkeypatch):
    # the pipeline dies; then the software is updated
    whole, session, _, calls, _ = _crash_and_restart(
        raw_session, tmp_path, monkeypatch, lambda s: _as_older_format(s / prepcache.CACHE_NAME))
    assert min(calls) < 8  # nothing taken from the old cache: every transient processed again
    meta, _, _ = prepcache.read_cache(session / prepcache.CACHE_NAME)
    assert meta is not None
    _assert_same(SessionReader(session).fits(), SessionReader(whole).fits(), rtol=1e-6)
    assert _source(refit(session))["source"] == "cache"
