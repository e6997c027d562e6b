"""pyarrow without its pandas integration, for ``aisec`` verbs that never convert to or from pandas.

pyarrow imports pandas (about 0.35 s of CPU, more than the rest of a one-row ``pii scan``) the first
time a Python value crosses into Arrow (``pa.array``, ``pa.scalar``, ``to_pylist``, compute functions
given a Python scalar), only to ask whether that value is a pandas object. A verb whose code never
calls ``to_pandas`` / ``from_pandas`` answers that question once, up front: pyarrow's check runs
while ``import pandas`` is refused, so it records "no pandas" and never asks again. The refusal ends
with the check: pandas stays importable for any code that imports it itself, and ``to_pandas``
still works (pyarrow's conversion module imports pandas itself); only pyarrow's "is this a pandas
object?" test answers no (tests/commands/test_cli_arrow.py).

The gates' Airflow operators do not do this (a worker process is shared), nor do verbs that use
pandas (GX expectations in ``source check``). ``tests/commands/test_cli_startup.py`` checks that
``pii scan`` imports no pandas, so a pyarrow that changes its shim is noticed.
"""

from __future__ import annotations

import sys


class _RefusePandas:
    """A meta path finder that makes ``import pandas`` fail while pyarrow checks for it."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not used by this aisec verb")


def pyarrow_without_pandas() -> None:
    """Tell pyarrow, before its first conversion, that pandas is absent (no-op if pandas is loaded)."""
    if "pandas" in sys.modules:
        return  # already paid for: pyarrow may as well use it
    import pyarrow

    shim = getattr(getattr(pyarrow, "lib", None), "_pandas_api", None)
    if shim is None:
        return  # another pyarrow: it will import pandas when it wants to (slower, not wrong)
    finder = _RefusePandas()
    sys.meta_path.insert(0, finder)
    try:
        shim.have_pandas  # noqa: B018 - the check itself: it imports pandas or records its absence
        # The C++ side looks for pandas once too, on the first conversion to numpy.
        pyarrow.array([0], pyarrow.int8()).to_numpy()
    finally:
        sys.meta_path.remove(finder)
        # A refused import can leave a half-initialised entry behind.
        for name in [n for n in sys.modules if n == "pandas" or n.startswith("pandas.")]:
            del sys.modules[name]
