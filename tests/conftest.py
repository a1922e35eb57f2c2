"""Test-wide settings, applied before any test module imports numpy."""

import os

from mrsmon.cli import BLAS_THREAD_VARS

# The same default as every `mrsmon` command: fits are many small matrix problems, and tests that call
# library functions in-process (and their worker processes) would otherwise oversubscribe the cores.
for var in BLAS_THREAD_VARS:
    os.environ.setdefault(var, "1")
