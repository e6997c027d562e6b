"""JSON parsed from bytes this process did not write: every way the text can be bad is a ``ValueError``.

``json.loads`` raises ``RecursionError`` for deep nesting (a line of 100,000 ``[`` passes any size limit),
which is not a ``ValueError``: a caller's "not valid JSON" branch missed it, and a tampered audit record
or a hostile JSONL line ended in exit 4 instead of its own clear error.
"""

from __future__ import annotations

import json
from typing import Any


def loads_json(data: str | bytes | bytearray) -> Any:
    """``json.loads(data)``, with nesting too deep for the parser raised as ``ValueError`` (invalid UTF-8
    already is one: ``UnicodeDecodeError``)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply to parse") from None
