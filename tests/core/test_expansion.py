"""core/io/expansion.py: values counted per reference, so a shared or recursive node cannot make a walk endless."""

from __future__ import annotations

import yaml

from airflow_aisec.core.io.expansion import within_values


def test_shared_nodes_count_once_per_reference():
    leaf = ["x"] * 10
    doc = leaf
    for _ in range(8):  # 10^9 values to a walker, 90 list objects in memory
        doc = [doc] * 10
    assert not within_values(doc, 1_000_000)
    small = {"a": [1, 2], "b": (3, {"c": None})}  # itself, 2 keys and 2 values, 2 + 2 items, 1 key and value
    assert within_values(small, 11) and not within_values(small, 10)


def test_a_recursive_node_ends_the_count():
    loop: list = []
    loop.append(loop)
    assert not within_values(loop, 1000)


def test_billion_laughs_yaml():
    lines = ["l0: &l0 [" + ", ".join(['"x"'] * 9) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    document = yaml.safe_load("\n".join(lines))
    assert len("\n".join(lines)) < 1000 and not within_values(document, 1_000_000)
