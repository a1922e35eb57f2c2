"""Coil combination: weights from the water reference when it comes first, kept in a "state" record that
restores them; a channel that turns noisy is taken out and the others rescaled."""

import numpy as np
from stage_helpers import T, transient_context

from mrs.pipeline.combine import CombineCoils
from mrs.pipeline.record import CacheRecord


def _coils(signal, sens, sd, rng):
    noise = sd * (rng.normal(size=(len(sens), signal.size)) + 1j * rng.normal(size=(len(sens), signal.size)))
    return sens[:, None] * signal[None, :] + noise / np.sqrt(2)


def test_weights_from_the_first_water_reference_combine_coils_in_phase():
    rng = np.random.default_rng(0)
    sens = np.array([1.0, 0.5j, -0.7, 0.3 - 0.3j])
    water = 1000 * np.exp(-np.pi * 6 * T)
    ctx, stage = transient_context(), CombineCoils()
    combined = stage.scan("water_ref", _coils(water, sens, 1.0, rng), ctx)
    assert ctx.new_state and ctx.weights.shape == (4,)
    assert abs(np.angle(combined[0])) < 0.01 and combined[0].real > 0  # coherent: starts real and positive
    # a second water reference leaves the weights alone
    w = ctx.weights.copy()
    ctx.new_state = False
    stage.scan("water_ref", _coils(water, sens, 1.0, rng), ctx)
    assert not ctx.new_state and np.array_equal(ctx.weights, w)
    # the state record restores them in a fresh context (a cache replay)
    fresh = transient_context()
    stage.apply(CacheRecord("state", arrays=stage.state(ctx)), fresh)
    assert np.array_equal(fresh.weights, ctx.weights) and not fresh.coils_excluded.any()


def test_noise_scans_go_no_further():
    ctx, stage = transient_context(), CombineCoils()
    assert stage.scan("noise", np.ones((4, T.size), complex), ctx) is None and ctx.weights is None


def test_a_channel_that_turns_noisy_leaves_the_combination():
    rng = np.random.default_rng(1)
    sens = np.array([1.0, 0.8, 0.6, 0.9])
    signal = 50 * np.exp(-np.pi * 8 * T)
    ctx, stage = transient_context(), CombineCoils()
    stage.prime(np.array([_coils(signal, sens, 1.0, rng) for _ in range(8)]), ctx)
    ctx.new_state = False
    for _ in range(16):  # the coils' start noise, then a clean stretch
        stage.process(_coils(signal, sens, 1.0, rng), ctx)
    assert not ctx.new_state
    for _ in range(8):
        x = _coils(signal, sens, 1.0, rng)
        x[2] += 10 * (rng.normal(size=T.size) + 1j * rng.normal(size=T.size))
        stage.process(x, ctx)
    assert ctx.new_state and ctx.coils_excluded.tolist() == [False, False, True, False]
    assert ctx.weights[2] == 0
    combined, _ = stage.process(_coils(signal, sens, 1.0, rng), ctx)
    assert abs(combined[0]) > 0.9 * abs(ctx.weights @ (sens * signal[0])) > 0  # the signal keeps its size
