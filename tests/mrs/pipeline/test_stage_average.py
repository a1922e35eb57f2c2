"""Block average: the mean of the accepted transients, with what was rejected and why; none accepted is a
failed block with that reason."""

import numpy as np
import pytest
from stage_helpers import processed

from mrs.pipeline.average import Average
from mrs.pipeline.stage import BlockFailed


def test_mean_of_the_accepted_and_the_rejection_counts():
    fids = [np.full(4, v, complex) for v in (1.0, 2.0, 30.0, 3.0)]
    avg, est = Average().process(processed(fids, [None, None, "motion", None]), None)
    np.testing.assert_array_equal(avg, np.full(4, 2.0))
    assert est == {"n_transients": 3, "n_rejected": 1, "rejected": {"motion": 1}}


def test_a_block_with_nothing_accepted_fails_with_its_reason():
    with pytest.raises(BlockFailed, match="every transient of the block was rejected"):
        Average().process(processed([np.ones(4, complex)] * 2, ["lipid", "motion"]), None)
