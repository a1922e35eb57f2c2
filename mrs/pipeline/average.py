"""Block average: the mean of the window's accepted transients, and what was rejected and why."""

from __future__ import annotations

from collections import Counter

import numpy as np

from mrs.pipeline.stage import BlockFailed, BlockStage


def rejection_counts(items) -> dict[str, int]:
    return dict(Counter(i.rejected for i in items if i.rejected))


class Average(BlockStage):
    name = "average"

    def process(self, items, ctx) -> tuple[np.ndarray, dict]:
        accepted = [i for i in items if i.rejected is None]
        rejected = rejection_counts(items)
        if not accepted:
            raise BlockFailed("every transient of the block was rejected")
        avg = np.mean([i.fid for i in accepted], axis=0)
        return avg, {"n_transients": len(accepted), "n_rejected": sum(rejected.values()), "rejected": rejected}
