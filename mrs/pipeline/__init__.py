"""Block processing for the agent, `mrsmon fit`, refit and replay."""

from mrs.pipeline.runner import FIRST_TRANSIENTS, BlockProcessor, PreparedRecord

__all__ = ["FIRST_TRANSIENTS", "BlockProcessor", "PreparedRecord"]
