"""Slow processes over a session: frequency and phase drift, slowly varying amplitudes."""

from __future__ import annotations

import numpy as np


def frequency_drift_hz(t_min: np.ndarray, rate_hz_per_min: float, random_walk_hz: float,
                       start_hz: float, rng: np.random.Generator) -> np.ndarray:
    """Linear drift plus a random walk whose step SD per transient is `random_walk_hz`."""
    steps = rng.normal(0.0, random_walk_hz, t_min.shape)
    steps[0] = 0.0
    return start_hz + rate_hz_per_min * (t_min - t_min[0]) + np.cumsum(steps)


def phase_drift_deg(n: int, random_walk_deg: float, start_deg: float,
                    rng: np.random.Generator) -> np.ndarray:
    steps = rng.normal(0.0, random_walk_deg, n)
    steps[0] = 0.0
    return start_deg + np.cumsum(steps)


def ornstein_uhlenbeck(t_min: np.ndarray, mean: float, sd: float, tau_min: float,
                       rng: np.random.Generator) -> np.ndarray:
    """A stationary slowly varying process (mean, SD, correlation time) sampled at `t_min`."""
    out = np.empty(t_min.shape)
    x = rng.normal(mean, sd)
    prev = t_min[0] if t_min.size else 0.0
    for i, t in enumerate(t_min):
        a = np.exp(-(t - prev) / tau_min) if tau_min > 0 else 0.0
        x = mean + a * (x - mean) + sd * np.sqrt(1.0 - a * a) * rng.normal()
        out[i] = x
        prev = t
    return out
