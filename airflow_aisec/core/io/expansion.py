"""How many values a parsed document holds once every reference in it is followed.

YAML aliases (and Python objects a DAG builds) share a node rather than copy it: a 1 kB "billion
laughs" document holds 10^8 values to anyone who walks it, and a policy check, a pod rule or a JSON
dump does walk it. Counting references before they are followed keeps that walk bounded.
"""

from __future__ import annotations

from typing import Any


def within_values(document: Any, limit: int) -> bool:
    """Whether ``document`` (dicts, lists and tuples of anything) holds at most ``limit`` values, keys
    included, counting a shared or recursive node once per reference."""
    count = 1
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            children: list[Any] = [*node.keys(), *node.values()]
        elif isinstance(node, (list, tuple)):
            children = list(node)
        else:
            continue
        count += len(children)
        if count > limit:
            return False
        stack.extend(children)
    return True
