"""core/io/json_input.py: every way untrusted JSON text can be bad is a ValueError."""

from __future__ import annotations

import pytest

from airflow_aisec.core.io.json_input import loads_json


@pytest.mark.parametrize("text", [b"[" * 100_000, b'{"a":' * 100_000, b"{", b"\xff", "[1,]", ""])
def test_bad_json_is_a_value_error(text):
    with pytest.raises(ValueError):
        loads_json(text)


def test_good_json_is_parsed():
    assert loads_json(b'{"a": [1, "\\u00e9"]}') == {"a": [1, "\u00e9"]}
    assert loads_json("[" * 500 + "]" * 500)  # deep, but within the parser's reach
