"""Cache records fed back through `add_prepared` give exactly the blocks that raw data gives, for any
block/window/step (the per-transient stages do not depend on them), and a processor restored from them
continues on raw data as if it had never stopped: the state changes only by applying records."""

import numpy as np
import pytest

from mrs.fit.toy import toy_basis
from mrs.pipeline import FIRST_TRANSIENTS, BlockProcessor, CacheRecord
from mrs.results import BlockResult, TransientRow
from tests.mrs.pipeline.test_runner import ACQ, CF, DWELL, NAMES, N, _session


@pytest.fixture(scope="module")
def basis():
    return toy_basis(CF, DWELL, N, names=NAMES)


@pytest.fixture(scope="module")
def stream(basis):
    return list(_session(basis, n_met=40, motion_at=(21, 22), seed=5, drift_hz_per_tr=0.08))


def _raw(basis, stream, block, step=None, sink=None):
    proc = BlockProcessor(ACQ, basis, block, step=step)
    proc.prepared_sink = sink
    out = []
    for seq, t_s, flags, data in stream:
        out += proc.add(seq, t_s, flags, data)
    return out + proc.flush()


def _prepared(basis, records, block, step=None):
    proc = BlockProcessor(ACQ, basis, block, step=step)
    out = []
    for rec in records:
        out += proc.add_prepared(rec)
    return out + proc.flush()


def _blocks(out):
    return [o.to_json() for o in out if isinstance(o, BlockResult)]


def _same_blocks(a, b, rtol=1e-6):
    assert len(a) == len(b) and len(a) > 0
    for x, y in zip(a, b, strict=True):
        assert (x["block"], x["t_s"], x["n_transients"], x["rejected"]) == (y["block"], y["t_s"], y["n_transients"],
                                                                          y["rejected"])
        assert x["conc"].keys() == y["conc"].keys()
        for k in x["conc"]:
            assert x["conc"][k] == pytest.approx(y["conc"][k], rel=rtol), k
        assert x["qc"]["drift_hz_per_min"] == pytest.approx(y["qc"]["drift_hz_per_min"], rel=rtol, abs=1e-9)
        assert x["qc"]["max_jump_hz"] == y["qc"]["max_jump_hz"]


def test_records_cover_every_transient_in_order(basis, stream):
    records = []
    _raw(basis, stream, 16, sink=records.append)
    kinds = [r.kind for r in records]
    assert kinds[0] == "state" and kinds.count("water") == 2 and kinds.count("reference") == 1
    met = [s for s, _, flags, _ in stream if not flags]
    trans = [r for r in records if r.kind == "transient"]
    assert [r.seq for r in trans] == met
    assert {r.rejected for r in trans} - {None}  # the motion transients were rejected
    assert all(r.fid.dtype == np.complex64 and r.fid.shape == (N,) for r in trans)


@pytest.mark.parametrize("block, step", [(16, None), (4, None), (12, 4)])
def test_prepared_records_give_the_same_blocks_as_raw_data_for_any_block_settings(basis, stream, block, step):
    records = []
    _raw(basis, stream, 32, sink=records.append)  # the per-transient work, done once with other settings
    raw = _raw(basis, stream, block, step)
    prepared = _prepared(basis, records, block, step)
    _same_blocks(_blocks(raw), _blocks(prepared))
    rows = lambda out: [o for o in out if isinstance(o, TransientRow)]  # noqa: E731
    assert rows(raw) == rows(prepared)


def test_a_processor_restored_from_records_continues_on_raw_data(basis, stream):
    records = []
    full = _raw(basis, stream, 16, sink=records.append)
    # stop after the 24th metabolite transient: the motion run (21, 22) is in the restored part
    trans_idx = [i for i, r in enumerate(records) if r.kind == "transient"]
    cut = trans_idx[23] + 1
    covered = {r.seq for r in records[:cut] if r.kind in ("transient", "water")}
    assert len(covered) > FIRST_TRANSIENTS
    proc = BlockProcessor(ACQ, basis, 16)
    out = []
    for rec in records[:cut]:
        out += proc.add_prepared(rec)
    later = []
    proc.prepared_sink = later.append
    for seq, t_s, flags, data in stream:
        if seq not in covered and "water_ref" not in flags and "noise" not in flags:
            out += proc.add(seq, t_s, flags, data)
    out += proc.flush()
    expect = [r for r in records[cut:] if r.kind == "transient"]
    got = [r for r in later if r.kind == "transient"]
    assert [r.seq for r in got] == [r.seq for r in expect]
    assert [r.rejected for r in got] == [r.rejected for r in expect]
    np.testing.assert_allclose([r.value("freq_hz") for r in got], [r.value("freq_hz") for r in expect], atol=1e-9)
    _same_blocks(_blocks(full), _blocks(out))


def test_a_rebuilt_reference_is_recorded_and_restored(basis):
    # the voxel changes for good at transient 20: after a run of rejections the reference is rebuilt
    stream = list(_session(basis, n_met=48, motion_at=tuple(range(20, 48)), seed=6))
    records = []
    raw = _raw(basis, stream, 16, sink=records.append)
    assert [r.kind for r in records].count("reference") == 2
    rejected = [r.rejected for r in records if r.kind == "transient"]
    assert rejected[-1] is None  # accepted again after the rebuild
    _same_blocks(_blocks(raw), _blocks(_prepared(basis, records, 16)))


def test_bad_prepared_records_never_raise(basis):
    proc = BlockProcessor(ACQ, basis, 4)
    out = proc.add_prepared(CacheRecord("transient", 3, 1.0, {"freq_hz": 0.0, "phase_deg": 0.0},
                                        {"fid": np.zeros(7, np.complex64)}))
    assert out[0].rejected.startswith("error")
    assert proc.add_prepared(CacheRecord("error", 4, 2.0, {"rejected": "error: bad"}))[0].rejected == "error: bad"
    assert proc.add_prepared(CacheRecord("nonsense", 5, 3.0))[0].rejected.startswith("error")
