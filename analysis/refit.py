"""Offline fitting of a stored session: the agent's own processing path, run again with other settings.

    refit(session_dir, block=16) -> Path            # SESSION/derivatives/refit-block16-001/
    refit(session_dir, window=32, step=8)           # sliding windows
    refit(session_dir, dynamic=True)                # block fits, then the dynamic fit (mrs.dynamic)
    fit_session_primary(session_dir)                # fits.jsonl etc. in the session folder itself,
                                                    # for sessions written without an agent

Transients are fed in seq order to `mrs.pipeline.BlockProcessor`, exactly as the agent's pipeline does,
so the same data and settings give the same numbers; results are written by the same
`protocols.session_folder.ResultsWriter`. A derivative set is never overwritten: each
refit takes the next free name (`refit-<settings>-NNN`), created atomically.

The per-transient stage (coil combination, registration, outlier tests) does not depend on the block
settings, so when the session holds a complete, valid preprocessing cache (`prepared.bin`, written by
the agent's pipeline; protocols/prepared_cache.py) the refit feeds that instead of raw.log: the same numbers,
without the per-transient work. Otherwise it reads raw.log and writes the cache for next time (if none
exists). settings.json says which (`preprocessing`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agent.store import write_json_atomic
from mrs.results import BlockQC, BlockResult, TransientRow, _num
from protocols import prepared_cache as prepcache
from protocols.plan import DEFAULT_REFERENCE_BLOCKS
from protocols.session_folder import ResultsWriter, SessionReader, software_version

Progress = Callable[[int, int], None]


class RefitError(ValueError):
    """A refit that cannot run (bad settings, nothing to fit)."""


# ------------------------------------------------------------------------------ processor pieces


def make_processor(header: dict, plan: dict | None, basis, block: int | None = None, step: int | None = None,
                   record: bool = False):
    """The agent's BlockProcessor with the plan's settings; `record`: it keeps (block, averaged FID,
    FitResult) of every fit it publishes in `processor.records` (the dynamic fit starts from them)."""
    from mrs.pipeline import BlockProcessor

    plan = plan or {}
    n_block = int(block or plan.get("block_transients", 32))
    window = tuple(plan.get("fit_window_ppm", (0.2, 4.2)))
    proc = BlockProcessor(header, basis, n_block, window_ppm=window, alarms=plan.get("alarms"), step=step,
                          reference_blocks=int(plan.get("reference_blocks", DEFAULT_REFERENCE_BLOCKS)),
                          outliers=plan.get("outliers"))
    if record:
        proc.records = []
    return proc


def load_basis(spec: str | None):
    if spec in (None, "", "auto"):
        return None
    from mrs.io.prepare import read_basis_checked

    return read_basis_checked(spec)  # a mirrored basis is fixed, and logged


def process_session(reader: SessionReader, processor, on_block: Callable[[BlockResult, tuple | None], None],
                    on_transient: Callable[[TransientRow], None] | None = None,
                    progress: Progress | None = None, prepared: list | None = None) -> int:
    """Feed every stored transient in seq order (or the session's `prepared` records, from its cache);
    `on_block(result, (fid, fit_result) or None)` for every block result in output order (a revised
    block comes again, later, with `revision`)."""
    records = processor.records
    total = len(reader.index["seq"]) if prepared is None else len(prepared)
    n_blocks = 0

    def handle(outputs: list, before: int) -> None:
        nonlocal n_blocks
        # the fits made while producing these outputs, by block index (the last one is published)
        fits = {index: (fid, res) for index, fid, res in (records[before:] if records is not None else [])}
        for o in outputs:
            if isinstance(o, TransientRow):
                if on_transient:
                    on_transient(o)
            elif isinstance(o, BlockResult):
                on_block(o, fits.get(o.block) if o.qc.fit_ms is not None else None)
                n_blocks += 1

    items = prepared if prepared is not None else [int(s) for s in reader.index["seq"]]
    for i, item in enumerate(items):
        before = len(records) if records is not None else 0
        if prepared is not None:
            handle(processor.add_prepared(item), before)
        else:
            handle(processor.add(item, reader.t_s(item), reader.flags(item), reader.transient(item)), before)
        if progress and (i % 32 == 0 or i == total - 1):
            progress(i + 1, total)
    before = len(records) if records is not None else 0
    handle(processor.flush(), before)
    return n_blocks


def latest_block_fits(blocks: list[tuple[BlockResult, Any]]) -> list[tuple[BlockResult, Any]]:
    """One entry per block index, the last result given for it, in block order."""
    last = {b.block: (b, rec) for b, rec in blocks}
    return [last[k] for k in sorted(last)]


# ------------------------------------------------------------------------------ primary fits
def fit_session_primary(session_dir: str | Path, basis=None, progress: Progress | None = None) -> int:
    """Fit a session written without an agent into its own fits.jsonl / spectra / transients.jsonl."""
    folder = Path(session_dir)
    if (folder / "fits.jsonl").exists() and (folder / "fits.jsonl").stat().st_size:
        raise RefitError(f"{folder} already holds fits.jsonl; use refit for a new derivative set")
    reader = SessionReader(folder)
    proc = make_processor(reader.header, reader.plan, basis)
    written: list = []
    proc.prepared_sink = written.append
    out = ResultsWriter(folder)
    try:
        n = process_session(reader, proc, lambda r, _: out.block(r.to_json()), lambda t: out.transient(t.to_json()),
                            progress)
    finally:
        out.close(fsync=True)
    _write_cache(folder, reader, proc, written)
    return n


# ------------------------------------------------------------------------------ preprocessing cache
def cached_records(folder: Path, reader: SessionReader, proc) -> tuple[list | None, str]:
    """The session's cache records when complete and valid for this processor, else (None, why)."""
    path = Path(folder) / prepcache.CACHE_NAME
    if not path.exists():
        return None, "no cache"
    if prepcache.of_other_version(path):
        return None, prepcache.OTHER_VERSION
    meta, records, _ = prepcache.read_cache(path)
    ok, why = prepcache.usable(meta, records, proc.preprocessing_key(), reader, complete=True)
    return (records, "ok") if ok else (None, why)


def _write_cache(folder: Path, reader: SessionReader, proc, records: list) -> bool:
    meta = prepcache.cache_meta(proc.preprocessing_key(), reader.coils, f"mrsmon {software_version()}")
    try:
        return prepcache.write_new_cache(folder, meta, records)
    except OSError:  # a read-only session folder: the cache is an optimisation only
        return False


# ------------------------------------------------------------------------------ refit
def derivative_name(block: int | None, window: int | None, step: int | None, dynamic: bool, basis: str) -> str:
    parts = ["refit"]
    if window:
        parts += [f"window{window}", f"step{step or window}"]
    elif block:
        parts.append(f"block{block}")
    if basis not in (None, "", "auto"):
        parts.append("basis-" + "".join(ch if ch.isalnum() else "" for ch in Path(basis).stem)[:24])
    if dynamic:
        parts.append("dynamic")
    return "-".join(parts)


def new_derivative_dir(session_dir: Path, stem: str) -> Path:
    base = Path(session_dir) / "derivatives"
    base.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10000):
        path = base / f"{stem}-{n:03d}"
        try:
            path.mkdir()  # atomic: two refits never get the same folder
            return path
        except FileExistsError:
            continue
    raise RefitError(f"no free derivative name for {stem} in {base}")


def refit(session_dir: str | Path, block: int | None = None, window: int | None = None, step: int | None = None,
          basis: str = "auto", dynamic: bool = False, smooth_s: float = 300.0,
          progress: Progress | None = None, use_cache: bool = True) -> Path:
    """Refit a stored session into a new derivative folder; returns that folder.

    `use_cache=False` reads raw.log even when a valid preprocessing cache exists (and writes none)."""
    folder = Path(session_dir)
    reader = SessionReader(folder)
    if block is not None and window is not None:
        raise RefitError("give either --block N or --window N --step M, not both")
    if step is not None and window is None:
        raise RefitError("--step needs --window")
    for name, v in (("block", block), ("window", window), ("step", step)):
        if v is not None and v < 1:
            raise RefitError(f"--{name} must be at least 1, not {v}")
    if len(reader.metabolite_seqs()) == 0:
        raise RefitError(f"session {folder.name} holds no metabolite transients")
    n_block = window or block
    basis_obj = load_basis(basis)
    t0 = time.perf_counter()
    proc = make_processor(reader.header, reader.plan, basis_obj, n_block, step if window else None, record=dynamic)
    prepared, why = cached_records(folder, reader, proc) if use_cache else (None, "not asked to use the cache")
    written: list = []
    if prepared is None and use_cache and why in ("no cache", prepcache.OTHER_VERSION):
        proc.prepared_sink = written.append
    blocks: list[tuple[BlockResult, tuple | None]] = []
    process_session(reader, proc, lambda r, rec: blocks.append((r, rec)), progress=progress, prepared=prepared)
    blocks = latest_block_fits(blocks)
    cache_written = bool(written) and _write_cache(folder, reader, proc, written)
    t_blocks = time.perf_counter() - t0
    t1 = time.perf_counter()
    rows = _dynamic_rows(proc, blocks, smooth_s) if dynamic else [r for r, _ in blocks]
    t_dyn = time.perf_counter() - t1
    out_dir = new_derivative_dir(folder, derivative_name(block, window, step, dynamic, basis))
    writer = ResultsWriter(out_dir, transients=False)  # transients are unchanged by a refit: see the session's own
    for r in rows:
        writer.block(r.to_json())
    writer.close(fsync=True)
    plan = reader.plan or {}
    write_json_atomic(out_dir / "settings.json", {
        "source_session": reader.header.get("session", folder.name), "kit_code": reader.header.get("kit_code"),
        "block_transients": n_block or plan.get("block_transients", 32), "step": step if window else None,
        "sliding": bool(window), "basis": basis or "auto", "dynamic": dynamic,
        "smooth_s": smooth_s if dynamic else None, "fit_window_ppm": plan.get("fit_window_ppm", [0.2, 4.2]),
        "software": f"mrsmon {software_version()}", "created_unix_s": round(time.time(), 3),
        "blocks": len(rows), "elapsed_s": {"block_fits": round(t_blocks, 3), "dynamic": round(t_dyn, 3)},
        "preprocessing": {"source": "cache" if prepared is not None else "raw",
                          "cache": prepcache.CACHE_NAME, "cache_unused_because": None if prepared is not None else why,
                          "cache_written": cache_written},
    })
    return out_dir


def _dynamic_rows(proc, blocks: list[tuple[BlockResult, tuple | None]], smooth_s: float) -> list[BlockResult]:
    from mrs.dynamic import abrupt_outliers, dynamic_fit

    fitted = [(r, rec) for r, rec in blocks if rec is not None]
    if len(fitted) < 2:
        raise RefitError("the dynamic fit needs at least two fitted blocks")
    fitter = proc.fitter
    fids = np.array([rec[0] for _, rec in fitted])
    ok = np.array([bool(rec[1].success) and r.qc.fit_status == "ok" for r, rec in fitted])
    t_s = np.array([r.t_s for r, _ in fitted], float)
    # Motion broadens the lines of a block or two: those blocks keep their own lineshape.
    fwhm = np.array([r.qc.naa_fwhm_hz for r, _ in fitted], dtype=float)
    with_reference = all(r.qc.reference == "session" for r, _ in fitted)
    dyn = dynamic_fit(fitter, fids, [rec[1] for _, rec in fitted], t_s, ok, smooth_s=smooth_s,
                      keep_own=abrupt_outliers(fwhm, t_s, smooth_s),
                      hold=fitter.session_mask() if with_reference else None)
    by_id = {id(r): i for i, (r, _) in enumerate(fitted)}
    rows = []
    for r, rec in blocks:
        i = by_id.get(id(r))
        rows.append(r.replace(spectrum=None) if i is None else _dynamic_row(r, rec[1], dyn, i))
    return rows


def _dynamic_row(r: BlockResult, block_fit, dyn, i: int) -> BlockResult:
    """A block's result with the dynamic fit's quantities, in the block's own units."""
    from mrs.dynamic import quantities
    from mrs.pipeline.scale import TCR_REFERENCE_MM

    q, rat = quantities(dyn.names, dyn.conc[i], dyn.cov[i])
    raw_q = block_fit.quantities()
    if r.water_scaled and raw_q.get("tCr", (0, 0))[0] > 0 and r.conc.get("tCr"):
        factor = float(r.conc["tCr"]) / raw_q["tCr"][0]
    else:
        tcr = q.get("tCr", (float("nan"), 0))[0]
        factor = TCR_REFERENCE_MM / tcr if tcr > 0 else 1.0
    qc = BlockQC(**{**{k: getattr(r.qc, k) for k in BlockQC.__dataclass_fields__},
                    "dynamic_n_eff": _num(dyn.n_eff[i], 3), "dynamic_fit_ok": bool(dyn.results[i].success),
                    "dynamic_own_lineshape": bool(dyn.own_lineshape[i])})
    return r.replace(spectrum=None, qc=qc,
                     conc={k: _num(v * factor) for k, (v, _) in q.items()},
                     sd={k: _num(e * factor) for k, (_, e) in q.items()},
                     crlb_pct={k: _num(100 * e / v, 3) if v > 0 else None for k, (v, e) in q.items()},
                     ratios={k: _num(v) for k, (v, _) in rat.items()},
                     ratios_sd={k: _num(e) for k, (_, e) in rat.items()})
