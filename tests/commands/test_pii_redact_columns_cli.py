"""``aisec pii redact`` on the issue's table: 20,000 en_US Faker phone numbers -> none left, and the
re-check against the classification made before redaction."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from tests.helpers import pii_corpus

REPO = Path(__file__).resolve().parents[2]
STRICT = str(REPO / "policies" / "strict.yaml")


def test_redact_twenty_thousand_us_phones_leaves_none(aisec_cli, tmp_path):
    phones = pii_corpus.phones("en_US", 20_000, seed=18)
    notes = [f"Customer asked for a call back on {p} before Friday, thanks a lot." for p in phones]
    src = tmp_path / "contacts.csv"
    pacsv.write_csv(pa.table({"id": list(range(len(phones))), "phone": phones, "notes": notes}), src)
    dst = tmp_path / "clean.csv"
    out = aisec_cli("pii", "redact", str(src), str(dst), "--policy", STRICT, "--json", timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["verdict"] == "pass" and result["metrics"]["redaction"]["published"] is True
    assert result["metrics"]["input_scan"]["redacted_as_column"] == ["phone"]
    table = pacsv.read_csv(dst, convert_options=pacsv.ConvertOptions(column_types={"phone": pa.string()}))
    assert set(table["phone"].to_pylist()) == {"<PHONE_NUMBER>"}
    left = [n for n in table["notes"].to_pylist() if re.search(r"\d", n)]
    assert left == []  # extensions and prefixes went with the number
    text = dst.read_text() + out.stdout + out.stderr
    assert not any(p in text for p in phones[:5000])
    # the published copy passes the gate
    assert aisec_cli("pii", "scan", str(dst), "--policy", STRICT).returncode == 0
