"""Simulated basis sets: density-matrix line lists per metabolite, cached, synthesised on a grid.

    simulate_basis(123.2, "press", 0.030, 1 / 4000, 2048) -> Basis of DEFAULT_METABOLITES
    basis_for_acquisition(session_start_dict)             -> that basis plus macromolecules

Line lists depend only on field, sequence timing and the spin systems, so they are what is cached
(on disk, keyed by a hash of those inputs); FIDs are synthesised on whatever dwell/points grid is
asked for. A cache failure (read-only home, corrupt file) only costs a re-simulation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from mrs.basis import WATER_PPM, Basis, BasisError
from mrs.spins import Metabolite, get_metabolites
from mrs.spinsim import SEQUENCES, LineList, SequenceError, sequence_steps, simulate_metabolite

log = logging.getLogger(__name__)

DEFAULT_METABOLITES: tuple[str, ...] = ("NAA", "NAAG", "Cr", "PCr", "GPC", "PCh", "mI", "sI", "Glu", "Gln",
                                        "GABA", "GSH", "Lac", "Asp", "Tau", "Glc", "Ala", "Gly", "PE")
DEFAULT_LINEWIDTH_HZ = 1.0  # small Lorentzian so basis FIDs decay (resampling, display); fitters add more
DEFAULT_STEAM_TM_S = 0.010
_CACHE_VERSION = 2  # bump when the simulation or its conventions change

# Scanner sequence names (case-insensitive) -> simulated sequence.
SEQUENCE_ALIASES = {
    "fid": "fid", "pulse-acquire": "fid", "pulse_acquire": "fid", "svs_fid": "fid",
    "press": "press", "svs_se": "press", "se": "press",
    "steam": "steam", "svs_st": "steam",
    "slaser": "slaser", "semi-laser": "slaser", "semilaser": "slaser", "semi_laser": "slaser",
    "svs_slaser": "slaser",
}


def cache_dir() -> Path:
    """$MRSMON_CACHE/basis if set, else ~/.cache/mrsmon/basis."""
    root = os.environ.get("MRSMON_CACHE")
    return Path(root) / "basis" if root else Path.home() / ".cache" / "mrsmon" / "basis"


def _cache_key(met: Metabolite, cf_mhz: float, sequence: str, te_s: float, te1_s: float | None,
               tm_s: float | None, centre_ppm: float) -> str:
    blob = json.dumps({"v": _CACHE_VERSION, "met": met.digest(), "cf": round(cf_mhz, 6), "seq": sequence,
                       "te": round(te_s, 9), "te1": None if te1_s is None else round(te1_s, 9),
                       "tm": None if tm_s is None else round(tm_s, 9), "centre": round(centre_ppm, 6)},
                      sort_keys=True)
    return f"{met.name}-{hashlib.sha256(blob.encode()).hexdigest()[:24]}"


def _cache_load(key: str) -> LineList | None:
    path = cache_dir() / f"{key}.npz"
    try:
        with np.load(path) as z:
            return LineList(np.array(z["freq_hz"], float), np.array(z["amp"], complex))
    except FileNotFoundError:
        return None
    except Exception as exc:  # corrupt or unreadable cache: simulate again
        log.debug("basis cache entry %s unusable (%s); re-simulating", path, exc)
        return None


def _cache_store(key: str, ll: LineList) -> None:
    try:
        d = cache_dir()
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, freq_hz=ll.freq_hz, amp=ll.amp)
        os.replace(tmp, d / f"{key}.npz")
    except Exception as exc:  # read-only home, full disk...: the simulation result is still returned
        log.debug("could not write basis cache entry %s (%s)", key, exc)


def metabolite_lines(met: Metabolite, cf_mhz: float, sequence: str, te_s: float, te1_s: float | None = None,
                     tm_s: float | None = None, centre_ppm: float = WATER_PPM, cache: bool = True) -> LineList:
    """Line list of one metabolite, from the disk cache when allowed and present."""
    key = _cache_key(met, cf_mhz, sequence, te_s, te1_s, tm_s, centre_ppm)
    if cache:
        hit = _cache_load(key)
        if hit is not None:
            return hit
    ll = simulate_metabolite(met, cf_mhz, sequence, te_s, te1_s, tm_s, centre_ppm)
    if cache:
        _cache_store(key, ll)
    return ll


def simulate_basis(field_mhz: float, sequence: str, te_s: float, dwell_s: float, n_points: int,
                   metabolites: list[str] | None = None, te1_s: float | None = None,
                   tm_s: float | None = None, cache: bool = True, *,
                   linewidth_hz: float = DEFAULT_LINEWIDTH_HZ, centre_ppm: float = WATER_PPM,
                   spin_table: str | Path | None = None) -> Basis:
    """Density-matrix basis set (ideal pulses) on the grid (dwell_s, n_points).

    field_mhz is the 1H spectrometer frequency (e.g. 123.2 at 2.89 T). Each FID is normalised so a
    singlet of n protons has fid[0] == n at pulse-acquire (n/2 for STEAM's stimulated echo).
    """
    seq = sequence.lower()
    if seq not in SEQUENCES:
        raise SequenceError(f"unknown sequence {sequence!r}; choose one of {', '.join(SEQUENCES)}")
    if not (np.isfinite(field_mhz) and field_mhz > 0):
        raise BasisError(f"field (spectrometer frequency) must be a positive number of MHz, got {field_mhz}")
    if not (np.isfinite(dwell_s) and dwell_s > 0) or int(n_points) < 2:
        raise BasisError(f"need a positive dwell time and at least 2 points, got {dwell_s} s, {n_points}")
    if seq == "steam" and tm_s is None:
        tm_s = DEFAULT_STEAM_TM_S
    if seq != "press":
        te1_s = None
    if seq != "steam":
        tm_s = None
    sequence_steps(seq, te_s, te1_s, tm_s)  # validate timing before any work
    names = list(DEFAULT_METABOLITES if metabolites is None else metabolites)
    mets = get_metabolites(names, spin_table)
    fids = np.zeros((len(mets), int(n_points)), complex)
    protons, outside = {}, {}
    nyquist_hz = 0.5 / dwell_s
    for i, met in enumerate(mets):
        ll = metabolite_lines(met, field_mhz, seq, te_s, te1_s, tm_s, centre_ppm, cache)
        # Lines beyond the spectral width would alias to false ppm; the scanner's filter removes them.
        inside = np.abs(ll.freq_hz) < nyquist_hz
        if not inside.all():
            outside[met.name] = float(np.abs(ll.amp[~inside]).sum())
            ll = LineList(ll.freq_hz[inside], ll.amp[inside])
        fids[i] = ll.fid(dwell_s, int(n_points), linewidth_hz)
        protons[met.name] = met.protons
    meta = {"source": "mrsmon density-matrix simulation (ideal pulses)", "sequence": seq, "te_s": float(te_s),
            "te1_s": te1_s, "tm_s": tm_s, "field_mhz": float(field_mhz), "linewidth_hz": float(linewidth_hz),
            "protons": protons, "convention": "NIfTI-MRS: fid = sum a exp(+i 2 pi f t), f = (ppm - centre) cf"}
    if outside:
        meta["dropped_outside_bandwidth"] = outside  # summed |amplitude| of lines beyond +-bw/2
    return Basis(tuple(names), fids, float(dwell_s), float(field_mhz), float(centre_ppm), meta)


def normalise_sequence(name: str) -> str:
    key = str(name).strip().lower().replace(" ", "")
    if key not in SEQUENCE_ALIASES:
        raise BasisError(f"cannot simulate a basis for sequence {name!r}; known: PRESS, sLASER, STEAM, FID")
    return SEQUENCE_ALIASES[key]


def basis_for_acquisition(acq: dict, cache: bool = True) -> Basis:
    """Default metabolites plus parametrised macromolecules for a SESSION_START-like dict."""
    from mrs.macromolecules import mm_basis

    try:
        cf_mhz = float(acq["spectrometer_frequency_mhz"])
        dwell_s = float(acq["dwell_time_s"])
        n_points = int(acq["points"])
        te_s = float(acq["echo_time_s"])
        seq = normalise_sequence(acq["sequence"])
    except KeyError as exc:
        raise BasisError(f"acquisition parameters lack {exc.args[0]!r}, needed to simulate a basis") from exc
    te1 = acq.get("te1_s")
    tm = acq.get("mixing_time_s")
    met = simulate_basis(cf_mhz, seq, te_s, dwell_s, n_points, None,
                         None if te1 is None else float(te1), None if tm is None else float(tm), cache)
    mm = mm_basis(cf_mhz, dwell_s, n_points)
    meta = dict(met.meta)
    meta["macromolecules"] = list(mm.names)
    meta["protons"] = {**met.meta["protons"], **mm.meta.get("protons", {})}
    return Basis(met.names + mm.names, np.vstack([met.fids, mm.fids]), dwell_s, cf_mhz, met.centre_ppm, meta)
