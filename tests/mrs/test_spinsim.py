"""Density-matrix simulation against closed-form physics."""

import numpy as np
import pytest

from mrs.spins import SpinGroup, SpinSystem, load_spin_table, singlet
from mrs.spinsim import SequenceError, sequence_steps, simulate_metabolite, simulate_system

CF = 123.2
SEQS = ["fid", "press", "steam", "slaser"]


def _lines_near(ll, freq_hz, tol_hz):
    m = np.abs(ll.freq_hz - freq_hz) < tol_hz
    return ll.freq_hz[m], ll.amp[m]


@pytest.mark.parametrize("seq", SEQS)
def test_singlet_position_and_area(seq):
    ll = simulate_metabolite(singlet("X", 2.008, 3), CF, seq, 0.030, tm_s=0.01)
    assert ll.freq_hz.size == 1
    assert ll.freq_hz[0] == pytest.approx((2.008 - 4.65) * CF)
    expected = 1.5 if seq == "steam" else 3.0  # STEAM keeps one of two pathways
    assert ll.amp[0] == pytest.approx(expected, abs=1e-12)  # real, upright: correct zero-order phase


def test_ax_doublet_split_by_j():
    ax = SpinSystem((SpinGroup("A", 4.0), SpinGroup("X", 1.5)), ((0, 1, 7.0),))
    ll = simulate_system(ax, CF, sequence_steps("fid", 0.0))
    f, a = _lines_near(ll, (1.5 - 4.65) * CF, 20)
    assert f.size == 2
    assert np.diff(f)[0] == pytest.approx(7.0, abs=0.01)
    assert a.sum().real == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("te_ms", [0, 20, 50, 71.4, 100, 144])
@pytest.mark.parametrize("seq", ["press", "slaser"])
def test_weak_coupling_modulation_cos_pi_j_te(seq, te_ms):
    j = 7.0
    # AX limit: 500 ppm apart (62 kHz at 3T). At a few ppm, first-order strong-coupling coherence
    # transfer by the refocusing pulses moves the result by a few percent (checked by brute force below).
    ax = SpinSystem((SpinGroup("A", 501.2), SpinGroup("X", 1.2)), ((0, 1, j),))
    ll = simulate_system(ax, CF, sequence_steps(seq, te_ms / 1e3))
    _, a = _lines_near(ll, (1.2 - 4.65) * CF, 20)
    assert a.sum().real == pytest.approx(np.cos(np.pi * j * te_ms / 1e3), abs=0.003)


def test_lactate_methyl_inverted_at_144_and_upright_at_288():
    lac = load_spin_table()["Lac"]
    f_methyl = (1.3142 - 4.65) * CF
    for te, sign in [(0.144, -1), (0.288, +1)]:
        _, a = _lines_near(simulate_metabolite(lac, CF, "press", te), f_methyl, 15)
        assert sign * a.sum().real > 0.95 * 3


@pytest.mark.parametrize("name", ["Glu", "GABA", "mI", "Lac", "NAAG"])
def test_pulse_acquire_conserves_total_signal(name):
    met = load_spin_table()[name]
    ll = simulate_metabolite(met, CF, "fid", 0.0)
    assert ll.total.real == pytest.approx(met.protons, rel=1e-5)
    assert abs(ll.total.imag) < 1e-6


def test_glu_is_strongly_coupled_at_3t():
    # Strong coupling: more lines than a first-order pattern and unequal intensities within multiplets.
    glu = load_spin_table()["Glu"]
    ll = simulate_metabolite(glu, CF, "fid", 0.0)
    beta_gamma = ll.amp[(ll.freq_hz > (1.95 - 4.65) * CF) & (ll.freq_hz < (2.45 - 4.65) * CF)]
    assert beta_gamma.size > 20
    assert np.ptp(beta_gamma.real) > 0.05


@pytest.mark.parametrize("seq", ["press", "slaser"])
def test_echo_at_te_to_zero_equals_pulse_acquire(seq):
    glu = load_spin_table()["Glu"]
    t = np.arange(512) / 4000
    fid0 = simulate_metabolite(glu, CF, "fid", 0.0).fid(1 / 4000, 512)
    fid_e = simulate_metabolite(glu, CF, seq, 1e-6).fid(1 / 4000, 512)
    assert np.abs(fid_e - fid0).max() < 1e-3 * np.abs(fid0).max()
    assert t.size == 512


def test_press_te1_changes_strongly_coupled_shape_but_not_singlets():
    glu = load_spin_table()["Glu"]
    a = simulate_metabolite(glu, CF, "press", 0.030, te1_s=0.010).fid(1 / 4000, 256)
    b = simulate_metabolite(glu, CF, "press", 0.030, te1_s=0.020).fid(1 / 4000, 256)
    assert np.abs(a - b).max() > 0.01
    s1 = simulate_metabolite(singlet("S", 3.0, 3), CF, "press", 0.030, te1_s=0.010)
    assert s1.amp[0] == pytest.approx(3.0)


def test_steam_mixing_time_matters_for_coupled_spins_only():
    glu = load_spin_table()["Glu"]
    a = simulate_metabolite(glu, CF, "steam", 0.020, tm_s=0.010).fid(1 / 4000, 256)
    b = simulate_metabolite(glu, CF, "steam", 0.020, tm_s=0.040).fid(1 / 4000, 256)
    assert np.abs(a - b).max() > 1e-3


def test_fid_synthesis_matches_direct_sum():
    ll = simulate_metabolite(load_spin_table()["Lac"], CF, "press", 0.030)
    t = np.arange(300) / 3000
    direct = np.exp(2j * np.pi * np.outer(t, ll.freq_hz)) @ ll.amp
    assert np.allclose(ll.fid(1 / 3000, 300), direct, atol=1e-10)


@pytest.mark.parametrize("args, msg", [(("press", 0.03, 0.05), "TE1"), (("echo", 0.03), "unknown sequence"),
                                       (("press", -1.0), "non-negative")])
def test_bad_timing_is_refused(args, msg):
    with pytest.raises(SequenceError, match=msg):
        sequence_steps(*args)


def _brute_force_press(system, te_s, te1_s, n_cycle=11, flip_rad=np.pi):
    """Independent check: full-space propagators (expm) and crushers as averaged z-rotations."""
    from functools import reduce

    from scipy.linalg import expm

    from mrs.spinsim import _expand, hamiltonian_hz

    ppm, pairs, _ = _expand(system)
    n = ppm.size
    h = hamiltonian_hz((ppm - 4.65) * CF, pairs)
    sx = np.array([[0, 0.5], [0.5, 0]])
    sy = np.array([[0, -0.5j], [0.5j, 0]])
    sz = np.diag([0.5, -0.5])
    eye = np.eye(2)

    def total(op):
        return sum(reduce(np.kron, [op if k == i else eye for k in range(n)]) for i in range(n))

    fx, fy, fz = total(sx), total(sy), total(sz)
    fplus = fx + 1j * fy
    u = lambda t: expm(-2j * np.pi * h * t)  # noqa: E731
    r90y, r180x = expm(-1j * np.pi / 2 * fy), expm(-1j * flip_rad * fx)
    te2 = te_s - te1_s
    rho0 = r90y @ fz @ r90y.conj().T
    out = np.zeros_like(rho0)
    for a in range(n_cycle):
        for b in range(n_cycle):
            ca, cb = expm(-1j * 2 * np.pi * a / n_cycle * fz), expm(-1j * 2 * np.pi * b / n_cycle * fz)
            prop = u(te2 / 2) @ cb @ r180x @ cb @ u(te1_s / 2 + te2 / 2) @ ca @ r180x @ ca @ u(te1_s / 2)
            out += prop @ rho0 @ prop.conj().T
    rho = out / n_cycle**2
    t = np.arange(256) / 4000
    w, v = np.linalg.eigh(h)
    fid = []
    for tk in t:
        uk = (v * np.exp(-2j * np.pi * w * tk)) @ v.conj().T
        fid.append(np.trace(uk @ rho @ uk.conj().T @ fplus) / 2 ** (n - 2))
    return np.array(fid)


@pytest.mark.parametrize("system", [
    SpinSystem((SpinGroup("A", 4.3), SpinGroup("X", 1.2)), ((0, 1, 7.0),)),
    SpinSystem((SpinGroup("A", 2.10), SpinGroup("B", 2.04)), ((0, 1, -14.8),)),
    load_spin_table()["Glu"].systems[0],
], ids=["AX 3ppm", "AB strong", "Glu"])
def test_eigenbasis_masks_match_brute_force_crusher_cycling(system):
    te, te1 = 0.030, 0.011
    ours = simulate_system(system, CF, sequence_steps("press", te, te1)).fid(1 / 4000, 256)
    brute = _brute_force_press(system, te, te1)
    # Line merging (1 mHz) and pruning (1e-7) bound the agreement at about 1e-6.
    assert np.abs(ours - brute).max() < 1e-5 * max(1.0, np.abs(brute).max())


def test_masked_selection_matches_crusher_cycling_for_imperfect_refocusing():
    # With a 160 degree "refocusing" pulse the p -> -p masks really remove pathways.
    from mrs.spinsim import Delay, Pulse

    glu = load_spin_table()["Glu"].systems[0]
    te, te1, flip = 0.030, 0.012, np.deg2rad(160)
    ref = Pulse(flip, 0.0, "refocus")
    steps = [Pulse(np.pi / 2, np.pi / 2), Delay(te1 / 2), ref, Delay(te / 2), ref, Delay((te - te1) / 2)]
    ours = simulate_system(glu, CF, steps).fid(1 / 4000, 256)
    brute = _brute_force_press(glu, te, te1, flip_rad=flip)
    assert np.abs(ours - brute).max() < 1e-5 * np.abs(brute).max()
    unselected = simulate_system(glu, CF, [s if isinstance(s, Delay) or s.select is None
                                           else Pulse(flip, 0.0) for s in steps]).fid(1 / 4000, 256)
    assert np.abs(unselected - brute).max() > 1e-2 * np.abs(brute).max()  # selection matters here


def test_phosphorus_coupling_splits_lines_but_is_refocused_by_proton_echoes():
    # A proton group weakly coupled to an unpulsed 31P: doublet split by J_HP; spin echoes refocus
    # J_HP (only the protons are flipped), so the echo amplitude does not modulate with TE.
    sys_p = SpinSystem((SpinGroup("OCH2", 4.0, 2),), (), 1.0, ((0, 6.0),))
    fid = simulate_system(sys_p, CF, sequence_steps("fid", 0.0))
    assert np.diff(np.sort(fid.freq_hz))[0] == pytest.approx(6.0)
    assert fid.amp.real == pytest.approx([1.0, 1.0])
    for te in (0.030, 1 / 12.0, 0.144):  # 1/(2J) would null an unrefocused coupling
        echo = simulate_system(sys_p, CF, sequence_steps("press", te))
        assert echo.total.real == pytest.approx(2.0, abs=1e-9)
