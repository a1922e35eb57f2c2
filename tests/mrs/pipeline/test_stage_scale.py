"""Scaling: institutional units (tCr = 8) without a water reference, mM from the water amplitude with one;
a concentration at or below zero has no finite CRLB (null, never infinity in JSON)."""

import numpy as np
import pytest
from stage_helpers import T, block_context, clean_fid

from mrs.fit.toy import toy_basis
from mrs.pipeline.fit import Fit
from mrs.pipeline.scale import TCR_REFERENCE_MM, WATER_CONC_MM, Scale, water_amplitude
from tests.mrs.pipeline.test_runner import CF, DWELL, NAMES, N


@pytest.fixture(scope="module")
def fitted():
    basis = toy_basis(CF, DWELL, N, names=NAMES)
    ctx = block_context(basis)
    res, _ = Fit().process(clean_fid(basis), ctx)
    return basis, res


def test_institutional_units_without_water(fitted):
    basis, res = fitted
    scaled, est = Scale().process(res, block_context(basis))
    assert est["water_scaled"] is False and est["conc"]["tCr"] == pytest.approx(TCR_REFERENCE_MM)
    assert scaled.fit is res and scaled.conc["tCr"] == pytest.approx(TCR_REFERENCE_MM)
    assert est["ratios"]["Glu/tCr"] == pytest.approx(est["conc"]["Glu"] / est["conc"]["tCr"], rel=1e-9)


def test_water_scaling_and_no_infinite_crlb(fitted):
    basis, res = fitted
    water = 5000 * np.exp(-np.pi * 5 * T)
    scaled, est = Scale().process(res, block_context(basis, water=[water]))
    assert water_amplitude(water) == pytest.approx(5000, rel=1e-6)
    raw_naa = res.quantities()["NAA"][0]
    assert est["water_scaled"] is True
    assert est["conc"]["NAA"] == pytest.approx(raw_naa * 2 * WATER_CONC_MM / 5000, rel=1e-9)
    zero = [k for k, v in scaled.conc.items() if not v > 0]
    assert all(est["crlb_pct"][k] is None for k in zero)
