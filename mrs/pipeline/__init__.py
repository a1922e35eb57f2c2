"""Block processing as declared stages, one file each (mrs/pipeline/stage.py says what a stage is).

    per transient (transients.py): combine.py, eddy.py, water.py, register.py, reject.py
    per block (blocks.py):          average.py, water_removal.py, fit.py, scale.py, quality.py
    the runner (runner.py):         BlockProcessor: windows, session reference and revisions, failed
                                    blocks, timing, alarms (mrs/qc.py), and the cache records (record.py)
"""

from mrs.pipeline.record import CacheRecord
from mrs.pipeline.runner import BlockProcessor
from mrs.pipeline.transients import FIRST_TRANSIENTS, REFERENCE_TRANSIENTS

__all__ = ["FIRST_TRANSIENTS", "REFERENCE_TRANSIENTS", "BlockProcessor", "CacheRecord"]
