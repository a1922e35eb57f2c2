"""The fit stage: fits the block average, warm-starts the next block, holds the session parameters once a
session reference exists, and fails the block with a sentence when there is no usable basis."""

import numpy as np
import pytest
from stage_helpers import block_context, clean_fid

from mrs.fit.toy import toy_basis
from mrs.pipeline.fit import Fit
from mrs.pipeline.stage import BlockFailed
from tests.mrs.pipeline.test_runner import ACQ, CF, DWELL, NAMES, N


@pytest.fixture(scope="module")
def basis():
    return toy_basis(CF, DWELL, N, names=NAMES)


def test_fit_warm_start_and_held_session_parameters(basis):
    ctx = block_context(basis)
    fid = clean_fid(basis)
    res, est = Fit().process(fid, ctx)
    assert res.success and est["reference"] == "block" and est["fit_ms"] > 0
    assert ctx.fitted == (fid, res) and np.array_equal(ctx.x_prev, res.x)
    # a session reference a little off this block's fit (inside the bounds: held values are kept as given)
    ctx.session_x = np.clip(res.x + 0.01 * np.abs(res.x), ctx.fitter.lo, ctx.fitter.hi)
    held, est = Fit().process(fid, ctx)
    mask = ctx.fitter.session_mask()
    assert est["reference"] == "session" and mask.any()
    np.testing.assert_array_equal(held.x[mask], ctx.session_x[mask])


def test_no_usable_basis_fails_the_block():
    from mrs.pipeline.blocks import BlockContext
    from mrs.pipeline.context import TransientContext

    tctx = TransientContext.for_acquisition({**ACQ, "sequence": "NOT-A-SEQUENCE"}, 32)
    ctx = BlockContext(tctx.grid, {**ACQ, "sequence": "NOT-A-SEQUENCE"}, None, (0.2, 4.2), tctx, 0)
    with pytest.raises(BlockFailed, match="no usable basis"):
        Fit().process(np.ones(N, complex), ctx)
