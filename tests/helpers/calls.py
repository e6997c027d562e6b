"""Counting the calls of a module-level function during a test (a read path taken, a parse not repeated),
or recording what a generator function yields."""

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


def record_yields(monkeypatch: Any, module: Any, name: str, measure: Any) -> list[Any]:
    """Wrap the generator function ``module.name`` for the rest of the test; the returned list gets
    ``measure(item)`` for every item it yields (e.g. the width of each block of columns read)."""
    seen: list[Any] = []
    original = getattr(module, name)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        for item in original(*args, **kwargs):
            seen.append(measure(item))
            yield item

    monkeypatch.setattr(module, name, recorded)
    return seen
