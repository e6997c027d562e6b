"""A gate that writes files (redacted copy, signature and provenance, report) under a policy floor whose
section differs from the gate's own: the check runs under both policies, yet one file is written, it
obeys both, its digest is the one recorded, and a run that fails or errors leaves nothing behind.
Real redaction, signing and report writing through the runner the operators and the CLI use."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_aisec.core.gate import run_gate
from airflow_aisec.core.gates.pii import check_pii, redact_table
from airflow_aisec.core.gates.signing import ProvenanceRequest, sign_model, verify_model
from airflow_aisec.core.policy import parse_policy
from airflow_aisec.core.report import write_report
from airflow_aisec.core.result import CheckOutcome, Finding
from tests.helpers.signing_keys import write_pem_keypair

EMAILS = ["zq.alice@example.com", "zq.bob@example.org"]
SSNS = ["372-81-4409", "529-33-0187"]


def _pii_policy(name: str, classification: str, method: str = "mask", extra: str = "") -> bytes:
    return f"""
version: 1
name: {name}
pii:
  levels:
    public: {{forbidden: ["*"]}}
    internal: {{allowed: [EMAIL_ADDRESS]}}
  redaction: {{method: {method}, classification: {classification}{extra}}}
  scan: {{batch_rows: 16}}
""".encode()


def _write_policy(directory: Path, stem: str, text: bytes):
    path = directory / f"{stem}.yaml"
    path.write_bytes(text)
    return parse_policy(text, source=str(path))


@pytest.fixture
def people(tmp_path):
    data = tmp_path / "in" / "people.parquet"
    data.parent.mkdir()
    pq.write_table(pa.table({
        "id": list(range(40)),
        "email": [EMAILS[i % 2] for i in range(40)],
        "notes": [f"ssn {SSNS[i % 2]} checked" if i % 4 == 0 else "ok" for i in range(40)],
    }), data)
    return data


def _redact(data: Path, out: Path):
    return lambda loaded: redact_table(loaded.section("pii"), str(data), str(out))


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------
# redaction
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("own_level, floor_level", [("public", "internal"), ("internal", "public")])
def test_a_redacted_copy_is_written_once_and_obeys_both_policies(people, tmp_path, own_level, floor_level):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "people.parquet"
    own = _write_policy(tmp_path, "own", _pii_policy("own", own_level))
    floor = _write_policy(tmp_path, "floor", _pii_policy("floor", floor_level))
    calls = []

    def check(loaded):
        calls.append(loaded.name)
        return _redact(people, out)(loaded)

    result = run_gate("pii", lambda: own, check, baseline=lambda: floor).result
    assert calls == ["own", "floor"]  # the sections differ: the check ran under both
    assert result.verdict == "pass"
    assert _files(out_dir) == ["people.parquet"]  # one file, no staged copy left
    text = json.dumps(pq.read_table(out).to_pylist())
    for value in EMAILS + SSNS:  # public forbids everything: whichever policy asks for it, it holds
        assert value not in text
    for loaded in (own, floor):  # the written copy passes the pii gate of each policy's redaction level
        section = loaded.section("pii")
        assert check_pii(section, str(out), classification=section.redaction.classification).findings == []
    written = next(i for i in result.inputs if i.uri == str(out))
    assert written.sha256 == _sha256(out)  # the trail records the file that was written
    assert "outputs_withheld" not in result.metrics


def test_a_floor_that_errors_leaves_no_redacted_copy(people, tmp_path, monkeypatch):
    """Before: the own policy's copy was published by the first run and stayed after the floor's error."""
    monkeypatch.delenv("AISEC_TEST_NO_SUCH_KEY", raising=False)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    own = _write_policy(tmp_path, "own", _pii_policy("own", "internal"))
    floor = _write_policy(tmp_path, "floor", _pii_policy(
        "floor", "public", method="hash", extra=", key: {env: AISEC_TEST_NO_SUCH_KEY}"))
    run = run_gate("pii", lambda: own, _redact(people, out_dir / "people.parquet"), baseline=lambda: floor)
    assert run.result.verdict == "error" and "AISEC_TEST_NO_SUCH_KEY" in run.result.error.message
    assert _files(out_dir) == []


def test_a_floor_that_fails_the_gate_withholds_the_redacted_copy(people, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "people.parquet"
    own = _write_policy(tmp_path, "own", _pii_policy("own", "public"))
    floor = _write_policy(tmp_path, "floor", _pii_policy("floor", "internal"))

    def check(loaded):  # the real redaction, plus a blocking finding only the floor raises
        outcome = _redact(people, out)(loaded)
        if loaded.name == "floor":
            outcome.findings.append(Finding(rule="pii.entity_not_allowed", message="floor says no", count=1))
        return outcome

    result = run_gate("pii", lambda: own, check, baseline=lambda: floor).result
    assert result.verdict == "fail"
    assert _files(out_dir) == []
    assert result.metrics["outputs_withheld"] == [str(out)]


def test_the_cli_writes_one_redacted_copy_under_a_baseline(aisec_cli, people, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (tmp_path / "own.yaml").write_bytes(_pii_policy("own", "public"))
    (tmp_path / "floor.yaml").write_bytes(_pii_policy("floor", "internal", method="drop"))
    out = out_dir / "people.parquet"
    proc = aisec_cli("pii", "redact", str(people), str(out), "--policy", str(tmp_path / "own.yaml"),
                     "--baseline", str(tmp_path / "floor.yaml"), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["baseline"]["name"] == "floor" and doc["verdict"] == "pass"
    assert _files(out_dir) == ["people.parquet"]
    assert next(i for i in doc["inputs"] if i["uri"] == str(out))["sha256"] == _sha256(out)
    text = json.dumps(pq.read_table(out).to_pylist())
    assert not any(v in text for v in EMAILS + SSNS)

    (tmp_path / "bad.yaml").write_bytes(_pii_policy("bad", "public", method="hash",
                                                    extra=", key: {env: AISEC_TEST_NO_SUCH_KEY}"))
    out.unlink()
    proc = aisec_cli("pii", "redact", str(people), str(out), "--policy", str(tmp_path / "own.yaml"),
                     "--baseline", str(tmp_path / "bad.yaml"))
    assert proc.returncode == 2 and _files(out_dir) == []


# ----------------------------------------------------------------------------------------------
# signing
# ----------------------------------------------------------------------------------------------
def _signing_policy(name: str, fingerprint: str, body: str = "") -> bytes:
    return f"""
version: 1
name: {name}
signing:
  trusted_keys: [{{id: release, fingerprint: "{fingerprint}"}}]
{body}""".encode()


@pytest.fixture
def model(tmp_path):
    root = tmp_path / "models" / "m"
    root.mkdir(parents=True)
    (root / "config.json").write_text('{"layers": 2}')
    (root / "weights.bin").write_bytes(bytes(range(256)) * 64)
    return root


def _sign(model: Path, key, **kw):
    return lambda loaded: sign_model(loaded.section("signing"), str(model), private_key=str(key.private), **kw)


def test_a_signature_is_written_once_and_verifies_under_both_policies(model, tmp_path):
    key = write_pem_keypair(tmp_path)
    own = _write_policy(tmp_path, "own", _signing_policy("own", key.fingerprint))
    floor = _write_policy(tmp_path, "floor", _signing_policy("floor", key.fingerprint,
                                                             "  require_provenance: false\n  allow_unsigned: false\n"
                                                             "  max_signature_bytes: 1000000\n"))
    result = run_gate("signing", lambda: own, _sign(model, key, provenance=ProvenanceRequest()),
                      baseline=lambda: floor).result
    assert result.verdict == "pass", result.error
    sig, prov = Path(f"{model}.sig"), Path(f"{model}.provenance.json")
    assert _files(model.parent) == ["m", "m.provenance.json", "m.sig"]
    # the own run's signature and provenance are the ones written, and recorded with their digests
    assert result.metrics["signature_sha256"] == _sha256(sig)
    assert result.metrics["provenance_sha256"] == _sha256(prov)
    assert {i.uri: i.sha256 for i in result.inputs}[str(sig)] == _sha256(sig)
    for loaded in (own, floor):
        verified = verify_model(loaded.section("signing"), str(model), public_key=str(key.public),
                                require_provenance=True)
        assert verified.metrics["verified"] is True
        # its provenance is signed by the same key over this model (a bad one raises); it names no dataset
        assert verified.metrics["provenance_sha256"] == _sha256(prov)
        assert [f.rule for f in verified.findings] == ["signing.provenance_dataset"]


def test_hashing_no_one_signature_can_meet_is_an_error_and_nothing_is_written(model, tmp_path):
    key = write_pem_keypair(tmp_path)
    own = _write_policy(tmp_path, "own", _signing_policy("own", key.fingerprint, "  hashing: {algorithm: blake2}\n"))
    floor = _write_policy(tmp_path, "floor", _signing_policy("floor", key.fingerprint))
    run = run_gate("signing", lambda: own, _sign(model, key), baseline=lambda: floor)
    assert run.result.verdict == "error" and "no one signature can meet" in run.result.error.message
    assert _files(model.parent) == ["m"]


def test_a_floor_refusing_the_model_leaves_no_signature_or_provenance(model, tmp_path):
    """Own policy allows symlinks, the floor does not: before, the own run's signature stayed."""
    (model / "alias.bin").symlink_to("weights.bin")
    key = write_pem_keypair(tmp_path)
    own = _write_policy(tmp_path, "own", _signing_policy("own", key.fingerprint, "  allow_symlinks: true\n"))
    floor = _write_policy(tmp_path, "floor", _signing_policy("floor", key.fingerprint))
    run = run_gate("signing", lambda: own, _sign(model, key, provenance=ProvenanceRequest()),
                   baseline=lambda: floor)
    assert run.result.verdict in ("error", "fail") and run.exception is not None
    assert _files(model.parent) == ["m"]
    # the own policy alone signs it, with its provenance
    alone = run_gate("signing", lambda: own, _sign(model, key, provenance=ProvenanceRequest())).result
    assert alone.verdict == "pass" and _files(model.parent) == ["m", "m.provenance.json", "m.sig"]


# ----------------------------------------------------------------------------------------------
# reports
# ----------------------------------------------------------------------------------------------
def test_a_report_is_written_once_even_when_the_floor_fails_the_gate(tmp_path):
    """A report explains a failure, so it is written after ``fail`` too: the own run's, once."""
    own = parse_policy(b"version: 1\nname: own\ndrift: {thresholds: {psi: {max: 0.9}}}\n", source="own.yaml")
    floor = parse_policy(b"version: 1\nname: floor\ndrift: {thresholds: {psi: {max: 0.2}}}\n", source="floor.yaml")
    report = tmp_path / "reports" / "drift.html"
    written = []

    def check(loaded):
        limit = loaded.section("drift").thresholds.psi.max
        ref, digest = write_report(f"<p>psi 0.5, limit {limit}</p>", str(report), name="drift-report")
        written.append(digest)
        findings = [Finding(rule="drift.psi", message=f"psi 0.5 > {limit}", count=1)] if limit < 0.5 else []
        return CheckOutcome(findings=findings, metrics={"report_sha256": digest}, reports=[ref])

    result = run_gate("drift", lambda: own, check, baseline=lambda: floor).result
    assert result.verdict == "fail" and len(written) == 2
    assert _files(report.parent) == ["drift.html"]
    assert "limit 0.9" in report.read_text()  # the own policy's report, which the metrics describe
    assert result.metrics["report_sha256"] == _sha256(report)
    assert [r.uri for r in result.reports] == [str(report)]
