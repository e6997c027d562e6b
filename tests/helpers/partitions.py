"""Partitioned test data for the mapped / Spark gates: one table, written whole, by row group, and as files.

Planted values (none may leave a summary, result, log or XCom) sit in rows of different partitions,
so merged positions must be offset correctly; a ``reference`` column of 16-digit numbers where some
pass Luhn by chance exercises chance correction on merged counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SSN = "372-81-4409"
EMAIL = "zq.planted@example.com"
PHONE = "(212) 555-0147"
CARD = "4539 1488 0343 6467"
PLANTED = [SSN, EMAIL, PHONE, CARD, "4539148803436467", "372814409"]


def planted_table(rows: int = 1000, *, clean: bool = False) -> Any:
    """``id``, ``email`` (every 7th row from row 130 on), ``notes`` (an SSN and a card in rows 420 and
    910), ``reference`` (numbers, some Luhn-valid by chance), ``comment`` (decoys). ``clean``: no PII."""
    import pyarrow as pa

    def email(i: int) -> str:
        return EMAIL if (not clean and i >= 130 and i % 7 == 0) else ""

    def note(i: int) -> str:
        if not clean and i in (420, 910):
            return f"customer said SSN {SSN} and card {CARD} by phone {PHONE}"
        return f"order {i} shipped on time"

    return pa.table({
        "id": list(range(1, rows + 1)),
        "email": [email(i) for i in range(rows)],
        "notes": [note(i) for i in range(rows)],
        "reference": [f"{(i * 7919 + 4_000_000_000_000_000) % 10**16:016d}" for i in range(rows)],
        "comment": [f"release v1.{i}.0 on 2024-01-{1 + i % 28:02d}, see train.py" for i in range(rows)],
    })


def write_whole(table: Any, path: Path, *, row_group_size: int = 125) -> Path:
    import pyarrow.parquet as pq

    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def write_files(table: Any, directory: Path, sizes: list[int], *, fmt: str = "parquet") -> list[Path]:
    """``table`` cut into consecutive files of ``sizes`` rows, named so that sorted order is data order."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    out, start = [], 0
    for i, n in enumerate(sizes):
        part = table.slice(start, n)
        path = directory / f"part-{i:05d}.{fmt}"
        if fmt == "parquet":
            pq.write_table(part, path, row_group_size=max(1, n // 2))
        else:
            pacsv.write_csv(part, path)
        out.append(path)
        start += n
    assert start == table.num_rows
    return out


def comparable(outcome: Any, *, drop_uri: bool = False) -> dict[str, Any]:
    """An outcome without what differs by nature between runs (timings, the partition count)."""
    d = json.loads(json.dumps(outcome.model_dump(mode="json") if hasattr(outcome, "model_dump") else outcome))
    for key in ("duration_s", "cells_per_s", "partitions"):
        d["metrics"].pop(key, None)
    if drop_uri:
        d.pop("inputs", None)
        for f in d["findings"]:
            f["location"].pop("uri", None)
    return d


def assert_value_free(obj: Any) -> None:
    text = json.dumps(obj, default=str)
    for value in PLANTED:
        assert value not in text, "a planted value leaked"
