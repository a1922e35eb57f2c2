"""Density-matrix simulation of coupled proton spin systems with ideal (instantaneous) pulses.

Method: Zeeman product basis, full Hamiltonian (chemical shifts + J couplings with flip-flop terms,
so strong coupling is exact), diagonalised once per spin system block-by-block in total M_z (the
Hamiltonian conserves M_z, so every eigenvector has a definite m and coherence orders stay defined
in the eigenbasis). Free precession is then an element-wise phase, a pulse two matrix products.

Coherence pathways are selected the way crusher gradients select them:
  - "refocus": crushers of equal area around a refocusing pulse keep only p -> -p;
  - an integer k: keep only coherence order k after the pulse (STEAM's stimulated echo: +1, then 0
    during TM, then -1 at acquisition; the unselected mirror pathway is the known 1/2 signal loss).
Coherence order of |a><b| is p = m_a - m_b; the receiver detects Tr(rho F+), i.e. the p = -1 part.

Output is a line list (frequency in Hz relative to the receiver, complex amplitude at t = 0 of the
acquisition, i.e. at the echo top) from which a FID is synthesised on any time grid:
    fid(t) = sum_k a_k exp(+i 2 pi f_k t)                      (NIfTI-MRS convention)
with f = (ppm - centre_ppm) * cf_mhz, so a pulse-acquire singlet of n protons has fid[0] = n.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import numpy as np

from mrs.spins import Metabolite, SpinSystem

SEQUENCES = ("fid", "press", "steam", "slaser")
# Pulse phases (rad): excitation about +y puts M_z on +x (real, positive signal); refocusing about
# +x maps I- to +I+ so spin echoes stay upright. STEAM phases chosen so its echo is upright too.
_PH_EXC = np.pi / 2
_PH_REF = 0.0
_PH_STEAM2 = 0.0
_PH_STEAM3 = 0.0

MERGE_TOL_HZ = 1e-3  # lines closer than this are merged (phase error < 0.01 rad over 1 s)
PRUNE_REL = 1e-7  # lines weaker than this fraction of the system's proton count are dropped


class SequenceError(ValueError):
    """Impossible sequence timing or an unknown sequence name."""


@dataclass(frozen=True)
class Pulse:
    flip_rad: float
    phase_rad: float
    select: str | int | None = None  # None, "refocus" (p -> -p) or an order to keep


@dataclass(frozen=True)
class Delay:
    t_s: float


Step = Pulse | Delay


@dataclass(frozen=True)
class LineList:
    """Resonance lines: frequency (Hz from the receiver) and complex amplitude at acquisition start."""

    freq_hz: np.ndarray
    amp: np.ndarray

    @property
    def total(self) -> complex:
        return complex(self.amp.sum())

    def fid(self, dwell_s: float, n_points: int, linewidth_hz: float = 0.0) -> np.ndarray:
        """FID on t = k * dwell_s, with optional Lorentzian broadening (FWHM, Hz).

        With t = (j * B + k) * dwell, exp(i 2 pi f t) factorises into a (B x lines) and a
        (lines x n/B) table of exponentials, so the FID is one matrix product and costs
        lines * (B + n/B) complex exponentials instead of lines * n.
        """
        n_points = int(n_points)
        block = max(1, int(np.sqrt(n_points)))
        n_blocks = -(-n_points // block)
        w = 2j * np.pi * self.freq_hz
        inner = np.exp(np.outer(np.arange(block) * dwell_s, w))  # (block, lines)
        outer = np.exp(np.outer(w, np.arange(n_blocks) * block * dwell_s)) * self.amp[:, None]  # (lines, blocks)
        out = (inner @ outer).T.reshape(-1)[:n_points]
        if linewidth_hz > 0:
            out = out * np.exp(-np.pi * linewidth_hz * np.arange(n_points) * dwell_s)
        return out

    @staticmethod
    def concat(lists: list[LineList], weights: list[float] | None = None) -> LineList:
        weights = weights or [1.0] * len(lists)
        if not lists:
            return LineList(np.zeros(0), np.zeros(0, complex))
        f = np.concatenate([ll.freq_hz for ll in lists])
        a = np.concatenate([ll.amp * w for ll, w in zip(lists, weights, strict=True)])
        return _merge(f, a)


def _merge(freq: np.ndarray, amp: np.ndarray, tol_hz: float = MERGE_TOL_HZ) -> LineList:
    if freq.size == 0:
        return LineList(freq.astype(float), amp.astype(complex))
    order = np.argsort(freq, kind="stable")
    f, a = freq[order], amp[order]
    new_group = np.concatenate([[True], np.diff(f) > tol_hz])
    gid = np.cumsum(new_group) - 1
    n = int(gid[-1]) + 1
    a_sum = np.zeros(n, complex)
    np.add.at(a_sum, gid, a)
    w = np.abs(a) + 1e-300
    f_mean = np.bincount(gid, weights=f * w, minlength=n) / np.bincount(gid, weights=w, minlength=n)
    return LineList(f_mean, a_sum)


# ---------------------------------------------------------------------------------------------
# Sequences as step lists

def sequence_steps(sequence: str, te_s: float, te1_s: float | None = None,
                   tm_s: float | None = None) -> list[Step]:
    """Ideal-pulse timing of a sequence; acquisition starts at the echo top (t = TE)."""
    seq = sequence.lower()
    if seq not in SEQUENCES:
        raise SequenceError(f"unknown sequence {sequence!r}; choose one of {', '.join(SEQUENCES)}")
    if not np.isfinite(te_s) or te_s < 0:
        raise SequenceError(f"echo time must be a finite, non-negative number of seconds, got {te_s}")
    exc = Pulse(np.pi / 2, _PH_EXC)
    ref = Pulse(np.pi, _PH_REF, "refocus")
    if seq == "fid":
        return [exc]
    if seq == "press":
        te1 = te_s / 2 if te1_s is None else float(te1_s)
        if not 0 <= te1 <= te_s:
            raise SequenceError(f"PRESS TE1 ({te1 * 1e3:.1f} ms) must lie between 0 and TE ({te_s * 1e3:.1f} ms)")
        te2 = te_s - te1
        return [exc, Delay(te1 / 2), ref, Delay(te1 / 2 + te2 / 2), ref, Delay(te2 / 2)]
    if seq == "slaser":
        # Two adiabatic pairs modelled as four ideal refocusing pulses, CPMG-spaced: TE/8, 3 x TE/4, TE/8.
        q = te_s / 4
        return [exc, Delay(q / 2), ref, Delay(q), ref, Delay(q), ref, Delay(q), ref, Delay(q / 2)]
    # STEAM: 90 - TE/2 - 90 - TM - 90 - TE/2, stimulated echo pathway +1 -> 0 -> -1.
    tm = 0.0 if tm_s is None else float(tm_s)
    if not np.isfinite(tm) or tm < 0:
        raise SequenceError(f"STEAM mixing time must be non-negative, got {tm_s}")
    return [Pulse(np.pi / 2, _PH_EXC, 1), Delay(te_s / 2), Pulse(np.pi / 2, _PH_STEAM2, 0), Delay(tm),
            Pulse(np.pi / 2, _PH_STEAM3, -1), Delay(te_s / 2)]


# ---------------------------------------------------------------------------------------------
# Spin operators and the Hamiltonian

def _expand(system: SpinSystem) -> tuple[np.ndarray, list[tuple[int, int, float]], np.ndarray]:
    """Spin-1/2 list of a system: each group of n equivalent protons becomes n spins."""
    ppm, owner = [], []
    for gi, g in enumerate(system.groups):
        ppm += [g.ppm] * g.n
        owner += [gi] * g.n
    owner_arr = np.array(owner)
    pairs = []
    for i, j, j_hz in system.couplings:
        for a in np.flatnonzero(owner_arr == i):
            for b in np.flatnonzero(owner_arr == j):
                pairs.append((int(a), int(b), j_hz))
    return np.array(ppm, float), pairs, owner_arr


def _bits(n_spins: int) -> np.ndarray:
    """bits[s, k] = 1 if spin k is down (beta) in product state s; spin 0 is the most significant."""
    s = np.arange(2 ** n_spins)
    return (s[:, None] >> (n_spins - 1 - np.arange(n_spins))[None, :]) & 1


def hamiltonian_hz(nu_hz: np.ndarray, couplings: list[tuple[int, int, float]]) -> np.ndarray:
    """H/h in Hz: sum nu_k Iz_k + sum J_kl (Iz_k Iz_l + (I+_k I-_l + I-_k I+_l) / 2)."""
    n = nu_hz.size
    bits = _bits(n)
    m = 0.5 - bits  # m_k of each state
    dim = 2 ** n
    h = np.zeros((dim, dim))
    h[np.diag_indices(dim)] = m @ nu_hz
    states = np.arange(dim)
    for k, l, j_hz in couplings:
        h[np.diag_indices(dim)] += j_hz * m[:, k] * m[:, l]
        differ = bits[:, k] != bits[:, l]
        partner = states ^ ((1 << (n - 1 - k)) | (1 << (n - 1 - l)))
        h[states[differ], partner[differ]] += j_hz / 2
    return h


def _single_rotation(flip_rad: float, phase_rad: float) -> np.ndarray:
    """exp(-i theta (cos(phi) Ix + sin(phi) Iy)) for one spin-1/2 (basis: alpha, beta)."""
    c, s = np.cos(flip_rad / 2), np.sin(flip_rad / 2)
    e = np.exp(1j * phase_rad)
    return np.array([[c, -1j * s * np.conj(e)], [-1j * s * e, c]])


def _fplus(n: int) -> np.ndarray:
    """F+ = sum_k I+_k: raises spin k from beta (bit 1) to alpha (bit 0)."""
    dim = 2 ** n
    bits = _bits(n)
    out = np.zeros((dim, dim))
    states = np.arange(dim)
    for k in range(n):
        down = bits[:, k] == 1
        out[states[down] ^ (1 << (n - 1 - k)), states[down]] = 1.0
    return out


class _Eigensystem:
    """H diagonalised within each M_z block; everything below works in this eigenbasis."""

    def __init__(self, nu_hz: np.ndarray, couplings: list[tuple[int, int, float]]):
        n = nu_hz.size
        self.n = n
        h = hamiltonian_hz(nu_hz, couplings)
        m_tot = (0.5 - _bits(n)).sum(axis=1)
        dim = 2 ** n
        vecs = np.zeros((dim, dim))
        energies = np.zeros(dim)
        m_eig = np.zeros(dim)
        col = 0
        for m_val in np.unique(m_tot):
            idx = np.flatnonzero(m_tot == m_val)
            e, v = np.linalg.eigh(h[np.ix_(idx, idx)])
            sl = slice(col, col + idx.size)
            vecs[idx, sl] = v
            energies[sl] = e
            m_eig[sl] = m_val
            col += idx.size
        self.v = vecs
        self.e_hz = energies
        self.order = np.rint(m_eig[:, None] - m_eig[None, :]).astype(int)  # coherence order of |a><b|
        self.d_e = energies[:, None] - energies[None, :]
        self.m_eig = m_eig
        self._fplus_eig = vecs.T @ _fplus(n) @ vecs

    def rotation(self, flip_rad: float, phase_rad: float) -> np.ndarray:
        r1 = _single_rotation(flip_rad, phase_rad)
        r = reduce(np.kron, [r1] * self.n)
        return self.v.T @ r @ self.v

    def run(self, steps: list[Step]) -> tuple[np.ndarray, np.ndarray]:
        rho = np.diag(self.m_eig).astype(complex)  # Fz: equilibrium deviation
        for step in steps:
            if isinstance(step, Delay):
                if step.t_s:
                    rho = rho * np.exp(-2j * np.pi * self.d_e * step.t_s)
                continue
            r = self.rotation(step.flip_rad, step.phase_rad)
            if step.select is None:
                rho = r @ rho @ r.conj().T
            elif step.select == "refocus" and abs(step.flip_rad - np.pi) < 1e-12:
                # An ideal 180 maps F_z to -F_z, so it sends every order p exactly to -p: the crusher
                # pair's selection removes nothing and the plain rotation is the selected result.
                rho = r @ rho @ r.conj().T
            elif step.select == "refocus":
                new = np.zeros_like(rho)
                for p in np.unique(self.order[np.abs(rho) > 0]):
                    part = np.where(self.order == p, rho, 0)
                    new += np.where(self.order == -p, r @ part @ r.conj().T, 0)
                rho = new
            else:
                rho = np.where(self.order == int(step.select), r @ rho @ r.conj().T, 0)
        # s(t) = Tr(rho(t) F+) / Tr(Ix^2): one proton on +x gives 1. In the 2^n space Tr(Ix_k^2) = 2^(n-2).
        # s(t) = sum_ab rho_ab F+_ba exp(-i 2 pi (E_a - E_b) t) / 2^(n-2)
        amp = rho * self._fplus_eig.T / 2.0 ** (self.n - 2)
        sel = self.order == -1
        return -self.d_e[sel], amp[sel]


def _run_spins(ppm: np.ndarray, pairs: list[tuple[int, int, float]], cf_mhz: float, steps: list[Step],
               centre_ppm: float, extra_hz: np.ndarray | None = None) -> LineList:
    nu_hz = (ppm - centre_ppm) * cf_mhz
    if extra_hz is not None:
        nu_hz = nu_hz + extra_hz
    eig = _Eigensystem(nu_hz, pairs)
    freq, amp = eig.run(steps)
    keep = np.abs(amp) > PRUNE_REL * ppm.size
    ll = _merge(freq[keep], amp[keep])
    keep = np.abs(ll.amp) > PRUNE_REL * ppm.size
    return LineList(ll.freq_hz[keep], ll.amp[keep])


def _hetero_states(system: SpinSystem, owner: np.ndarray) -> list[np.ndarray | None]:
    """Per-spin frequency offsets for each state (m = +-1/2) of a weakly coupled 31P nucleus.

    J I_z S_z commutes with everything the proton pulses do, so each 31P state is an independent
    proton simulation with offsets +-J/2 on the coupled spins, weighted 1/2.
    """
    if not system.hetero:
        return [None]
    j_of_group = np.zeros(len(system.groups))
    for i, j_hz in system.hetero:
        j_of_group[i] += j_hz
    return [m * j_of_group[owner] for m in (0.5, -0.5)]


def simulate_system(system: SpinSystem, cf_mhz: float, steps: list[Step],
                    centre_ppm: float = 4.65) -> LineList:
    """Line list of one spin system (weighted by its scale) for a sequence's steps."""
    if not system.couplings:
        # Uncoupled groups: each is one spin scaled by its proton count (exact, 2 x 2 only).
        parts, weights = [], []
        for gi, g in enumerate(system.groups):
            states = _hetero_states(system, np.array([gi]))
            for extra in states:
                parts.append(_run_spins(np.array([g.ppm]), [], cf_mhz, steps, centre_ppm, extra))
                weights.append(g.n * system.scale / len(states))
        return LineList.concat(parts, weights)
    ppm, pairs, owner = _expand(system)
    states = _hetero_states(system, owner)
    parts = [_run_spins(ppm, pairs, cf_mhz, steps, centre_ppm, extra) for extra in states]
    return LineList.concat(parts, [system.scale / len(states)] * len(states))


def simulate_metabolite(met: Metabolite, cf_mhz: float, sequence: str, te_s: float,
                        te1_s: float | None = None, tm_s: float | None = None,
                        centre_ppm: float = 4.65) -> LineList:
    steps = sequence_steps(sequence, te_s, te1_s, tm_s)
    return LineList.concat([simulate_system(s, cf_mhz, steps, centre_ppm) for s in met.systems])
