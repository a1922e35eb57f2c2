"""Small builders shared by the stage tests: a context for the toy acquisition, and FIDs with known shifts."""

from __future__ import annotations

import numpy as np

from mrs.fit.toy import TYPICAL_MM, synth_fid, toy_basis
from mrs.pipeline.blocks import BlockContext
from mrs.pipeline.context import TransientContext
from mrs.pipeline.transients import Processed
from tests.mrs.pipeline.test_runner import ACQ, CF, DWELL, NAMES, N

T = np.arange(N) * DWELL


def transient_context(records: list | None = None) -> TransientContext:
    ctx = TransientContext.for_acquisition(ACQ, 32)
    if records is not None:
        ctx.emit = records.append
    return ctx


def clean_fid(basis=None) -> np.ndarray:
    basis = basis if basis is not None else toy_basis(CF, DWELL, N, names=NAMES)
    return synth_fid(basis, TYPICAL_MM, lorentz_hz=3.0, gauss_hz=4.0, mm_lorentz_hz=6.0)


def noisy(fid: np.ndarray, sd: float, rng) -> np.ndarray:
    return fid + sd * (rng.normal(size=fid.size) + 1j * rng.normal(size=fid.size)) / np.sqrt(2)


def shifted(fid: np.ndarray, hz: float, phase_rad: float = 0.0) -> np.ndarray:
    return fid * np.exp(2j * np.pi * hz * T + 1j * phase_rad)


def block_context(basis, items=(), water=()) -> BlockContext:
    tctx = transient_context()
    tctx.water = list(water)
    ctx = BlockContext(tctx.grid, ACQ, basis, (0.2, 4.2), tctx, 0)
    ctx.items = list(items)
    return ctx


def processed(fids, rejected=None) -> list[Processed]:
    rejected = rejected or [None] * len(fids)
    return [Processed(i, 2.0 * i, f, 0.1 * i, 0.0, r) for i, (f, r) in enumerate(zip(fids, rejected, strict=True))]
