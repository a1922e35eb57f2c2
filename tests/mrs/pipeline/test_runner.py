"""The runner (BlockProcessor) end to end on synthetic multi-coil sessions (toy basis, known truth)."""

import json

import numpy as np
import pytest

from mrs.fit.toy import TYPICAL_MM, synth_fid, toy_basis, toy_coil_transients
from mrs.pipeline import BlockProcessor
from mrs.results import BlockResult, TransientRow

CF = 123.25
DWELL = 1 / 4000
N = 2048
NAMES = ["NAA", "NAAG", "Cr", "PCr", "GPC", "PCh", "mI", "Glu", "Gln", "GABA", "GSH", "MM09", "MM20"]
ACQ = {"spectrometer_frequency_mhz": CF, "dwell_time_s": DWELL, "points": N, "coils": 4,
       "echo_time_s": 0.03, "repetition_time_s": 2.0, "sequence": "PRESS"}
RESULT_KEYS = {"block", "t_s", "t_start_s", "t_end_s", "n_transients", "n_rejected", "rejected", "conc", "sd",
               "crlb_pct", "ratios", "ratios_sd", "qc", "spectrum"}
QC_KEYS = {"snr", "naa_fwhm_hz", "water_fwhm_hz", "freq_offset_hz", "drift_hz_per_min", "max_jump_hz",
           "phase_deg", "residual_rel", "fit_status", "message", "fit_ms"}


@pytest.fixture(scope="module")
def basis():
    return toy_basis(CF, DWELL, N, names=NAMES)


def _session(basis, n_met=48, motion_at=(), water=2, noise=1, seed=0, drift_hz_per_tr=0.05, burst=()):
    """Yields (seq, t_s, flags, data) like the agent, with a known truth."""
    rng = np.random.default_rng(seed)
    sens = rng.uniform(0.3, 1.0, 4) * np.exp(1j * rng.uniform(-np.pi, np.pi, 4))
    clean = synth_fid(basis, TYPICAL_MM, lorentz_hz=3.0, gauss_hz=4.0, mm_lorentz_hz=6.0)
    t = np.arange(N) * DWELL
    noise_sd = float(np.fft.fft(clean).real.max() / (15.0 * np.sqrt(N)))  # single-transient SNR ~15 x coils
    seq = 0
    for _ in range(noise):
        yield seq, 0.0, frozenset({"noise"}), toy_coil_transients(np.zeros(N, complex), 4, noise_sd, rng, sens)
        seq += 1
    for _ in range(water):
        w = 2000.0 * np.exp(-np.pi * 6 * t)
        yield seq, 0.0, frozenset({"water_ref"}), toy_coil_transients(w, 4, noise_sd, rng, sens)
        seq += 1
    for i in range(n_met):
        f = drift_hz_per_tr * i
        fid = clean * np.exp(2j * np.pi * f * t + 0.1j * np.sin(i / 5))
        if i in burst:  # poorly suppressed water, 15x NAA, phase changing transient to transient
            fid = fid + 15 * TYPICAL_MM["NAA"] * 3 * np.exp(-np.pi * 14 * t + 1j * rng.uniform(-np.pi, np.pi))
        if i in motion_at:  # motion: broadened, weaker, shifted, lipid-contaminated
            fid = 0.6 * fid * np.exp(-np.pi * 8 * t + 1.0j) \
                + 40 * np.exp(2j * np.pi * (1.3 - 4.65) * CF * t - np.pi * 15 * t)
        yield seq, 2.0 * i, frozenset(), toy_coil_transients(fid, 4, noise_sd, rng, sens)
        seq += 1


def _run(proc, stream):
    out = []
    for seq, t_s, flags, data in stream:
        out += proc.add(seq, t_s, flags, data)
    out += proc.flush()
    return ([o.to_json() for o in out if isinstance(o, TransientRow)],
            [o.to_json() for o in out if isinstance(o, BlockResult)])


def test_blocks_follow_the_schema_and_recover_the_truth(basis):
    proc = BlockProcessor(ACQ, basis, 16)
    trans, blocks = _run(proc, _session(basis, motion_at=(21,)))
    assert len(trans) == 48 and [b["block"] for b in blocks] == [0, 1, 2]
    assert trans[21]["rejected"] in ("motion", "lipid", "low_signal")
    assert sum(1 for t in trans if t["rejected"]) <= 3
    for b in blocks:
        assert RESULT_KEYS <= set(b) and QC_KEYS <= set(b["qc"])
        json.dumps(b, allow_nan=False)  # strictly JSON: no NaN / inf
        assert b["qc"]["fit_status"] == "ok", b["qc"]["message"]
        assert b["water_scaled"] is True
        true = (TYPICAL_MM["Glu"]) / (TYPICAL_MM["Cr"] + TYPICAL_MM["PCr"])
        assert abs(b["ratios"]["Glu/tCr"] - true) < 3 * b["ratios_sd"]["Glu/tCr"] + 0.05 * true
        assert b["crlb_pct"]["Glu"] < 15
        assert "Glx/tNAA" in b["ratios"] and "Glx" in b["conc"]
        spec = b["spectrum"]
        assert len(spec["ppm"]) == len(spec["data"]) == len(spec["fit"]) == len(spec["baseline"])
        assert min(spec["ppm"]) >= 0.2 and max(spec["ppm"]) <= 4.2
    assert blocks[1]["n_rejected"] == 1 and blocks[1]["n_transients"] == 15
    # frequency tracking: the drift of 0.05 Hz per TR (2 s) is 1.5 Hz/min
    assert blocks[-1]["qc"]["drift_hz_per_min"] == pytest.approx(1.5, abs=0.4)
    f = np.array([t["freq_hz"] for t in trans if not t["rejected"]])
    seqs = np.array([i for i, t in enumerate(trans) if not t["rejected"]])
    assert np.polyfit(seqs, f, 1)[0] == pytest.approx(0.05, abs=0.01)


def test_tcr_units_without_water_reference(basis):
    proc = BlockProcessor(ACQ, basis, 16)
    _, blocks = _run(proc, _session(basis, n_met=16, water=0, noise=0, seed=1))
    b = blocks[0]
    assert b["water_scaled"] is False
    assert b["conc"]["tCr"] == pytest.approx(8.0)


def test_sliding_windows(basis):
    proc = BlockProcessor(ACQ, basis, 16, step=8)
    trans, blocks = _run(proc, _session(basis, n_met=36, seed=2))
    # complete windows start at 0, 8, 16; flush adds the partial window from 24 (12 >= 16/2)
    assert [b["block"] for b in blocks] == [0, 1, 2, 3]
    assert [b["n_transients"] + b["n_rejected"] for b in blocks] == [16, 16, 16, 12]
    assert trans[20]["block"] == 2


def test_flush_fits_a_partial_block_only_when_at_least_half_full(basis):
    _, blocks = _run(BlockProcessor(ACQ, basis, 16), _session(basis, n_met=16 + 7, seed=3))
    assert len(blocks) == 1
    _, blocks = _run(BlockProcessor(ACQ, basis, 16), _session(basis, n_met=16 + 8, seed=3))
    assert len(blocks) == 2 and blocks[1]["n_transients"] + blocks[1]["n_rejected"] == 8


def test_never_raises_on_weird_data(basis):
    proc = BlockProcessor(ACQ, basis, 4)
    out = proc.add(0, 0.0, frozenset(), np.full((4, N), np.nan, np.complex64))
    assert out and out[0].rejected.startswith("error")
    out = proc.add(1, 0.0, frozenset(), np.zeros((4, 7), np.complex64))
    assert out[0].rejected.startswith("error")
    blocks = []
    for i in range(4):
        blocks += [o for o in proc.add(2 + i, 2.0 * i, frozenset(), np.zeros((4, N), np.complex64))
                   if isinstance(o, BlockResult)]
    blocks += [o for o in proc.flush() if isinstance(o, BlockResult)]
    assert blocks and blocks[0].qc.fit_status == "failed"
    assert [a.name for a in blocks[0].qc.alarms] == ["fit_failed"]
    json.dumps(blocks[0].to_json(), allow_nan=False)


def test_unusable_basis_gives_failed_blocks_with_a_message():
    proc = BlockProcessor({**ACQ, "sequence": "NOT-A-SEQUENCE"}, None, 2)
    rng = np.random.default_rng(0)
    out = []
    for i in range(2):
        out += proc.add(i, 2.0 * i, frozenset(), toy_coil_transients(np.ones(N, complex), 4, 0.1, rng))
    out += proc.flush()  # (fewer than FIRST_TRANSIENTS: processed at the end of the stream)
    res = [o for o in out if isinstance(o, BlockResult)][0]
    assert res.qc.fit_status == "failed" and "basis" in res.qc.message


def test_basis_none_simulates_one_for_the_acquisition():
    proc = BlockProcessor(ACQ, None, 2)
    fitter = proc.fitter
    assert fitter is not None, proc.blocks.ctx.fitter_error
    assert {"NAA", "Glu", "Gln", "Cr", "PCr"} <= set(fitter.names)
    assert any(n.startswith("MM") for n in fitter.names)


def test_residual_water_burst_neither_captures_alignment_nor_rejects_everything(basis):
    proc = BlockProcessor(ACQ, basis, 16)
    trans, blocks = _run(proc, _session(basis, burst=range(16, 32), seed=4))
    f = np.array([t["freq_hz"] for t in trans])
    true = 0.05 * np.arange(48)
    err = (f - f[:16].mean()) - (true - true[:16].mean())
    assert np.max(np.abs(err[16:32])) < 1.5
    assert sum(1 for t in trans[16:32] if t["rejected"]) <= 2
    assert blocks[1]["qc"]["fit_status"] == "ok"


def _by_output(blocks):
    return [(b["block"], b.get("revision"), b["qc"].get("reference")) for b in blocks]


def test_session_reference_holds_session_parameters_and_revises_the_first_blocks(basis):
    proc = BlockProcessor(ACQ, basis, 8, reference_blocks=3)
    proc.records = []
    _, blocks = _run(proc, _session(basis, n_met=48))
    assert _by_output(blocks) == [(0, None, "provisional"), (1, None, "provisional"), (2, None, "provisional"),
                                  (0, 1, "session"), (1, 1, "session"), (2, 1, "session"),
                                  (3, None, "session"), (4, None, "session"), (5, None, "session")]
    mask = proc.fitter.session_mask()
    assert mask.sum() >= 3
    held = [res.x for index, _, res in proc.records[3:]]
    for x in held:  # every block after the reference carries exactly the reference's session parameters
        np.testing.assert_array_equal(x[mask], proc.blocks.ctx.session_x[mask])
    # ... while what moves from block to block was fitted
    assert len({round(float(x[0]), 9) for x in held}) > 1
    for b in blocks[3:]:
        assert b["qc"]["fit_status"] == "ok"
        assert b["ratios"]["NAA/tCr"] == pytest.approx(TYPICAL_MM["NAA"] / (TYPICAL_MM["Cr"] + TYPICAL_MM["PCr"]),
                                                       rel=0.15)


def test_a_session_shorter_than_the_reference_is_revised_at_the_end(basis):
    _, blocks = _run(BlockProcessor(ACQ, basis, 8, reference_blocks=10), _session(basis, n_met=24))
    assert _by_output(blocks) == [(0, None, "provisional"), (1, None, "provisional"), (2, None, "provisional"),
                                  (0, 1, "session"), (1, 1, "session"), (2, 1, "session")]


def test_without_a_reference_every_block_is_fitted_on_its_own(basis):
    _, blocks = _run(BlockProcessor(ACQ, basis, 8), _session(basis, n_met=24))
    assert _by_output(blocks) == [(0, None, "block"), (1, None, "block"), (2, None, "block")]


def _with_noisy_coil(stream, coil: int, from_seq: int, factor: float, seed: int = 5):
    """The stream with extra noise on one channel from `from_seq` on (its noise SD times ~factor)."""
    rng = np.random.default_rng(seed)
    sd = None
    for seq, t_s, flags, data in stream:
        data = np.array(data)
        if not flags:
            tail = data[coil, -256:]
            sd = sd if sd is not None else float(np.std(tail))
            if seq >= from_seq:
                data[coil] += factor * sd * (rng.normal(size=N) + 1j * rng.normal(size=N)) / np.sqrt(2)
        yield seq, t_s, flags, data


def test_a_channel_that_turns_noisy_is_taken_out_of_the_combination(basis):
    clean = BlockProcessor(ACQ, basis, 8)
    _, ref_blocks = _run(clean, _session(basis, n_met=64, seed=2))
    proc = BlockProcessor(ACQ, basis, 8)
    _, blocks = _run(proc, _with_noisy_coil(_session(basis, n_met=64, seed=2), coil=2, from_seq=28, factor=25))
    assert proc.coils_excluded.tolist() == [False, False, True, False]
    assert blocks[-1]["qc"]["coils_excluded"] == [2] and blocks[0]["qc"]["coils_excluded"] == []
    # the last blocks are back to the clean session's SNR (with the channel's noise in: a fraction)
    assert blocks[-1]["qc"]["snr"] > 0.6 * ref_blocks[-1]["qc"]["snr"]
    stay = BlockProcessor(ACQ, basis, 8)
    _run(stay, _session(basis, n_met=64, seed=2))
    assert not stay.coils_excluded.any()  # no false exclusion on a clean session


def test_warm_up_changes_no_result(basis):
    cold = BlockProcessor(ACQ, basis, 8)
    _, a = _run(cold, _session(basis, n_met=24, seed=4))
    warm = BlockProcessor(ACQ, basis, 8)
    fitters = [warm.fitter, *warm.blocks.ctx.stiffer_fitters]
    assert len(fitters) == 3  # no session reference: 1, 1.5 and 2 ppm knots
    calls = []

    def counting(fitter):
        fit = fitter.fit

        def counted(*args, **kwargs):
            calls.append(fitter)
            return fit(*args, **kwargs)
        return counted

    for f in fitters:  # count the warm-up fits of each fitter a block will use
        f.fit = counting(f)
    warm.warm_up()
    assert [id(f) for f in calls] == [id(f) for f in fitters]
    _, b = _run(warm, _session(basis, n_met=24, seed=4))
    assert [r["block"] for r in a] == [r["block"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        for k, v in ra["ratios"].items():
            assert rb["ratios"][k] == pytest.approx(v, rel=1e-9, abs=1e-12)


def test_blocks_on_their_own_average_baseline_stiffnesses_but_not_for_a_dynamic_refit(basis):
    # fitted on their own (no session reference) the blocks are the mean over 1, 1.5 and 2 ppm knots; a run
    # that records its fits for the dynamic refit keeps one model (its cost test compares like with like)
    _, blocks = _run(BlockProcessor(ACQ, basis, 16), _session(basis))
    assert [b["qc"].get("baseline_knots_ppm") for b in blocks] == [[1.0, 1.5, 2.0]] * 3
    proc = BlockProcessor(ACQ, basis, 16)
    proc.records = []
    _, blocks = _run(proc, _session(basis))
    assert all("baseline_knots_ppm" not in b["qc"] for b in blocks)
    assert all(res.baseline_knots_ppm == () for _, _, res in proc.records)


def test_knot_spacings_that_give_the_same_baseline_over_the_window_are_fitted_once(basis):
    # over 0.2-3.9 ppm (a window residual water narrowed) knots every 1.5 and 2 ppm both make 2 intervals
    _, blocks = _run(BlockProcessor(ACQ, basis, 16, window_ppm=(0.2, 3.9)), _session(basis, n_met=16))
    assert blocks[0]["qc"]["baseline_knots_ppm"] == [1.0, 1.5]
