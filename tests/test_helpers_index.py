"""The index of ``tests/helpers`` (its package docstring) names every helper module, so a new one is found."""

from __future__ import annotations

from pathlib import Path

import tests.helpers


def test_every_helper_module_is_listed():
    modules = {p.stem for p in Path(tests.helpers.__file__).parent.glob("*.py") if p.stem != "__init__"}
    listed = {m for m in modules if f"* ``{m}``" in (tests.helpers.__doc__ or "")}
    assert modules - listed == set()
