"""Text that is not UTF-8 in a CSV header or cell is invalid input in every data verb: exit 2, one
line naming the file and the column or line, never an internal error (exit 4)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STRICT = str(REPO / "policies" / "strict.yaml")

HEADER = b"label,pred,group,notes\n"
#: pyarrow parses CSV in 1 MiB blocks: a bad cell after the first block is met while streaming, one in
#: the first block while the column types are inferred. Both must end the same way.
LATE_ROW = 60_000


def rows(n: int) -> list[bytes]:
    return [f"{i % 2},{(i // 2) % 2},{'ab'[i % 3 % 2]},note {i}\n".encode() for i in range(n)]


def write_case(path: Path, kind: str) -> int | None:
    """Write a CSV with one non-UTF-8 spot; returns the 1-based line it is on (None: the header)."""
    body = rows(80_000)
    if kind == "header":
        path.write_bytes(b"label,pred,gr\xffoup,notes\n" + b"".join(body))
        return None
    row = 5 if kind == "early_cell" else LATE_ROW
    body[row] = b"1,0,b,caf\xe9 latin-1\n"
    path.write_bytes(HEADER + b"".join(body))
    return row + 2


def verb_args(verb: str, data: Path, tmp_path: Path) -> list[str]:
    if verb == "pii":
        return ["pii", "scan", str(data), "--policy", STRICT]
    if verb == "source":
        policy = tmp_path / "source.yaml"
        policy.write_text(f'version: 1\nname: s\nsource:\n  origins: ["{tmp_path}/*"]\n')
        return ["source", "check", str(data), "--policy", str(policy)]
    if verb == "bias":
        return ["bias", "check", str(data), "--policy", STRICT, "--label", "label", "--prediction", "pred",
                "--sensitive", "group"]
    reference = tmp_path / "reference.csv"
    reference.write_bytes(HEADER + b"".join(rows(1000)))
    return ["drift", "check", str(reference), str(data), "--policy", STRICT]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["header", "early_cell", "late_cell"])
@pytest.mark.parametrize("verb", ["pii", "source", "bias", "drift"])
def test_non_utf8_is_invalid_input(aisec_cli, tmp_path, verb, kind):
    data = tmp_path / "data.csv"
    line = write_case(data, kind)
    if verb == "bias" and kind != "header":
        # The bias gate reads only the columns it needs: put the bad text in one of them.
        text = data.read_bytes().replace(b"1,0,b,caf\xe9 latin-1\n", b"1,0,caf\xe9,x\n")
        data.write_bytes(text)
    out = aisec_cli(*verb_args(verb, data, tmp_path))
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"aisec: {data}: ") and "not UTF-8" in lines[0]
    if kind == "header":
        assert "column #3" in lines[0] and "header (line 1)" in lines[0]
    else:
        column = "'group'" if verb == "bias" else "'notes'"
        assert f"CSV column {column}" in lines[0] and f"line {line}" in lines[0]
    assert "Traceback" not in out.stdout + out.stderr
    # The bad cell's text, in any decoding, never leaks; digests (long hex runs) may hold "caf" by chance.
    assert "caf" not in re.sub(r"[0-9a-f]{12,}", "", out.stdout + out.stderr)
