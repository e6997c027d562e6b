"""Redaction by column, checked against the classification made before it (issue 18 item 4)."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from airflow_aisec.core.gates.pii import _rewrite
from airflow_aisec.core.gates.pii.redact import RULE_RESIDUAL, redact_table
from airflow_aisec.core.policy.sections.pii import PiiPolicy
from tests.helpers import pii_corpus

KEY = "column-redaction-key-0123456789"
# Anything that still looks like a phone number: 7+ digits in phone-like writing.
_LEFT = re.compile(r"\d[\d\-. ()x]{5,}\d")


def _policy(**redaction) -> PiiPolicy:
    return PiiPolicy(levels={"public": {"forbidden": ["*"]}}, redaction=redaction or {"method": "mask"})


@pytest.fixture(scope="module")
def us_phones():
    return pii_corpus.phones("en_US", 20_000, seed=18)


def test_twenty_thousand_us_phones_leave_nothing(tmp_path, us_phones):
    """The issue's case: every en_US Faker phone (``001-``, ``+1``, dots, ``x`` extensions) is gone."""
    src = tmp_path / "phones.csv"
    pacsv.write_csv(pa.table({"id": list(range(len(us_phones))), "phone": us_phones}), src)
    dst = tmp_path / "out.csv"
    out = redact_table(_policy(), str(src), str(dst))
    assert out.findings == [] and out.metrics["redaction"]["published"] is True
    col = pacsv.read_csv(dst, convert_options=pacsv.ConvertOptions(column_types={"phone": pa.string()}))["phone"]
    values = col.to_pylist()
    assert set(values) == {"<PHONE_NUMBER>"}
    assert out.metrics["redaction"]["columns"]["phone"]["cells"] == len(us_phones)
    assert out.metrics["input_scan"]["redacted_as_column"] == ["phone"]
    text = dst.read_text()
    assert not any(p in text for p in us_phones[:2000])


def test_broken_redaction_fails_the_recheck(tmp_path, us_phones, monkeypatch):
    """A rewriter that masks only the part before the extension, or skips cells, is caught and nothing is published."""
    src = tmp_path / "phones.csv"
    pacsv.write_csv(pa.table({"phone": us_phones[:3000]}), src)
    real = _rewrite.Rewriter.token

    def partial(self, entity, text):  # "<PHONE_NUMBER>x31948": the extension survives
        head, sep, ext = text.partition("x")
        return real(self, entity, head) + (sep + ext if sep else "")

    monkeypatch.setattr(_rewrite.Rewriter, "token", partial)
    dst = tmp_path / "out.csv"
    out = redact_table(_policy(), str(src), str(dst))
    assert not dst.exists() and out.metrics["redaction"]["published"] is False
    residual = [f for f in out.findings if f.rule == RULE_RESIDUAL and f.location.get("mode") == "column"]
    assert residual and residual[0].location["column"] == "phone" and residual[0].count > 0
    assert all(p not in f.message for f in out.findings for p in us_phones[:3000])

    # a rewriter that leaves every tenth cell alone
    monkeypatch.setattr(_rewrite.Rewriter, "token",
                        lambda self, entity, text: text if hash(text) % 10 == 0 else real(self, entity, text))
    out = redact_table(_policy(), str(src), str(dst))
    assert not dst.exists() and any(f.rule == RULE_RESIDUAL for f in out.findings)


def test_free_text_is_redacted_by_span_with_extensions_and_prefixes(tmp_path):
    notes = [f"Customer asked for a call back on {p} before Friday, thanks a lot." for p in
             ("962.952.7601x89555", "001-513-290-9960", "+1-537-640-6812x41586", "(212) 555-0147 ext. 12")]
    notes += ["Nothing personal in this note at all, just words."] * 4
    src = tmp_path / "notes.parquet"
    pq.write_table(pa.table({"notes": notes}), src)
    dst = tmp_path / "out.parquet"
    out = redact_table(_policy(), str(src), str(dst))
    assert out.findings == [] and out.metrics["input_scan"]["redacted_as_column"] == []
    got = pq.read_table(dst)["notes"].to_pylist()
    assert got[0] == "Customer asked for a call back on <PHONE_NUMBER> before Friday, thanks a lot."
    assert all("<PHONE_NUMBER> before" in g for g in got[:4])
    assert got[4:] == notes[4:]
    assert not any(_LEFT.search(g) for g in got)


def test_partial_span_in_free_text_fails_the_recheck(tmp_path, monkeypatch):
    notes = [f"Please call back on {p} before Friday, thanks a lot." for p in
             pii_corpus.phones("en_US", 200, seed=4) if "x" in p]
    src = tmp_path / "notes.csv"
    pacsv.write_csv(pa.table({"notes": notes}), src)
    real = _rewrite.Rewriter.token
    monkeypatch.setattr(_rewrite.Rewriter, "token", lambda self, entity, text: real(self, entity, text.split("x")[0])
                        + ("x" + text.split("x")[1] if "x" in text else ""))
    out = redact_table(_policy(), str(src), str(tmp_path / "out.csv"))
    spans = [f for f in out.findings if f.location.get("mode") == "span"]
    assert spans and spans[0].count == len(notes) and out.metrics["redaction"]["published"] is False


@pytest.mark.parametrize("method", ["hash", "drop"])
def test_column_redaction_with_hash_and_drop(tmp_path, method, us_phones):
    phones = us_phones[:500]
    src = tmp_path / "phones.parquet"
    pq.write_table(pa.table({"phone": phones + ["", None], "ref": [f"R-{i}" for i in range(502)]}), src)
    dst = tmp_path / "out.parquet"
    settings = {"method": method} | ({"key": {"env": "AISEC_TEST_KEY"}} if method == "hash" else {})
    out = redact_table(_policy(**settings), str(src), str(dst), environ={"AISEC_TEST_KEY": KEY})
    assert out.findings == [], [f.message for f in out.findings]
    table = pq.read_table(dst)
    got = table["phone"].to_pylist()
    assert table["ref"].to_pylist() == [f"R-{i}" for i in range(502)]
    if method == "drop":
        assert got[:500] == [None] * 500
    else:
        assert all(re.fullmatch(r"PHONE_NUMBER_[0-9a-f]{32}", g) for g in got[:500])
        # same number written the same way -> same token (joins keep working)
        first = {p: g for p, g in zip(phones, got)}
        assert all(first[p] == g for p, g in zip(phones, got))
    assert got[500:] in (["", None], [None, None])


def test_low_share_column_keeps_its_other_values(tmp_path):
    """A reference column with a few IBANs among invoice ids: the IBANs go, the ids stay."""
    refs = [f"INV-{i:06d}" for i in range(200)]
    refs[5] = "DE89370400440532013000"
    src = tmp_path / "refs.csv"
    pacsv.write_csv(pa.table({"reference": refs}), src)
    dst = tmp_path / "out.csv"
    out = redact_table(_policy(), str(src), str(dst))
    assert out.findings == []
    got = pacsv.read_csv(dst)["reference"].to_pylist()
    assert got[5] == "<IBAN_CODE>" and got[:5] == refs[:5] and got[6:] == refs[6:]


@pytest.mark.parametrize("method", ["mask", "hash", "drop"])
def test_wide_table_redacted_in_few_passes_equals_column_by_column(tmp_path, us_phones, monkeypatch, method):
    """Detection, text shape and the residual check run for many columns per pass (a wide table's
    hundreds of PII columns each paid a pass: 6.4 s for 100k x 5); one column per pass gives the same
    output file, metrics and findings."""
    from airflow_aisec.core.gates.pii import _detect

    rows = 12
    data = {}
    for c in range(60):
        kind = c % 6
        if kind == 0:  # whole column of phone numbers
            data[f"phone_{c}"] = us_phones[c * rows:(c + 1) * rows]
        elif kind == 1:  # free text with an e-mail in some cells
            data[f"note{c}"] = [f"write to user{c}x{r}@example.com about order {r}" if r % 3 == 0 else
                                f"nothing to see in row {r} of note {c}" for r in range(rows)]
        elif kind == 2:  # named by its header: ssn-like digits
            data[f"ssn_{c}"] = [f"{100 + r:03d}-{10 + c % 80:02d}-{1000 + r * 7:04d}" for r in range(rows)]
        elif kind == 3:
            data[f"qty{c}"] = list(range(c, c + rows))
        else:
            data[f"text{c}"] = [f"plain words {c} {r}" for r in range(rows)]
    src = tmp_path / "wide.csv"
    pacsv.write_csv(pa.table(data), src)
    policy = _policy(method=method, **({"key": {"env": "AISEC_TEST_KEY"}} if method == "hash" else {}))
    env = {"AISEC_TEST_KEY": KEY}

    def run(name: str):
        dst = tmp_path / name
        out = redact_table(policy, str(src), str(dst), environ=env)
        return out, dst.read_bytes() if dst.exists() else None

    joined, joined_bytes = run("joined.csv")
    monkeypatch.setattr(_detect, "MAX_CELLS_PER_PASS", 1)  # one column per pass
    single, single_bytes = run("single.csv")
    assert joined_bytes == single_bytes and joined_bytes is not None
    for out in (joined, single):
        out.metrics["redaction"].pop("duration_s")
        out.metrics["redaction"].pop("output")
        for timing in ("duration_s", "cells_per_s"):
            out.metrics["output_scan"].pop(timing, None)
    assert joined.metrics == single.metrics
    assert [f.model_dump() for f in joined.findings] == [f.model_dump() for f in single.findings]
    redacted = joined.metrics["redaction"]
    assert redacted["cells_redacted"] >= 10 * rows and len(redacted["columns"]) >= 30
    assert us_phones[0] not in joined_bytes.decode()
