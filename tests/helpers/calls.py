"""Counting the calls of a module-level function during a test (a read path taken, a parse not repeated)."""

from __future__ import annotations

from typing import Any


def count_calls(monkeypatch: Any, module: Any, name: str) -> list[int]:
    """Wrap ``module.name`` for the rest of the test; the returned one-element list holds its call count."""
    calls = [0]
    original = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls
