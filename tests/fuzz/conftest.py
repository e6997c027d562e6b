"""Bounded memory for the fuzz suite: the process's peak RSS stays under a limit (time is bounded by
each module's pytest-timeout marker)."""

from __future__ import annotations

import resource

import pytest

#: Peak resident memory of the test process, in MiB: the CLI in-process plus pyarrow and presidio
#: need ~400 MiB; a fuzzed input that made a verb read something whole would go far beyond.
MAX_RSS_MIB = 1536


@pytest.fixture(autouse=True)
def _bounded_memory():
    yield
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert peak_mib < MAX_RSS_MIB, f"peak RSS {peak_mib:.0f} MiB >= {MAX_RSS_MIB} MiB"
