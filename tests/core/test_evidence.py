"""The hash-chained audit trail: tamper detection and concurrent appends (local and real S3)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from pathlib import Path

import pytest

from airflow_aisec.core.evidence import HEAD_NAME, open_evidence_store, record_name
from airflow_aisec.exceptions import EvidenceChainError


def fill(location, n=5, **kw):
    store = open_evidence_store(location, **kw)
    refs = [store.append({"gate": "pii", "verdict": "pass", "i": i}) for i in range(n)]
    return store, refs


def test_append_and_verify(tmp_path):
    store, refs = fill(tmp_path / "ev")
    assert [r.seq for r in refs] == [1, 2, 3, 4, 5]
    report = store.verify()
    assert report.records == 5 and report.head_sha256 == refs[-1].sha256
    records = store.read_records()
    assert records[0]["prev_sha256"] == "0" * 64
    assert [r["payload"]["i"] for r in records] == [0, 1, 2, 3, 4]


def test_empty_store_verifies(tmp_path):
    assert open_evidence_store(tmp_path / "none").verify().records == 0


def test_records_are_never_overwritten(tmp_path):
    store, _ = fill(tmp_path / "ev", 2)
    assert store._create(record_name(1), b"forged") is False
    store.verify()


def test_read_record_reads_records_only(tmp_path):
    # The name comes from an XCom anchor: it must not reach files outside the trail.
    store, refs = fill(tmp_path / "ev", 1)
    (tmp_path / "secret.txt").write_text("not a record")
    assert store.read_record(refs[0].name) is not None
    for name in ("../secret.txt", str(tmp_path / "secret.txt"), HEAD_NAME, ".lock", "000000000001.json/.."):
        assert store.read_record(name) is None, name


def _rewrite(path: Path, mutate):
    os.chmod(path, 0o644)
    doc = json.loads(path.read_bytes())
    mutate(doc)
    path.write_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\n")


@pytest.mark.parametrize("which", [1, 3, 5])
def test_edit_is_detected(tmp_path, which):
    store, _ = fill(tmp_path / "ev")
    _rewrite(tmp_path / "ev" / record_name(which), lambda d: d["payload"].update(verdict="fail"))
    with pytest.raises(EvidenceChainError) as info:
        store.verify()
    assert info.value.record == record_name(which)


def test_edit_with_recomputed_digest_is_caught_by_the_next_link(tmp_path):
    from airflow_aisec.core.evidence import _sha256, canonical_json

    store, _ = fill(tmp_path / "ev")

    def forge(doc):
        doc["payload"]["verdict"] = "fail"
        doc.pop("body_sha256")
        doc["body_sha256"] = _sha256(canonical_json(doc))

    _rewrite(tmp_path / "ev" / record_name(2), forge)
    with pytest.raises(EvidenceChainError) as info:
        store.verify()
    assert info.value.record == record_name(3)


def test_removal_in_the_middle_is_detected(tmp_path):
    store, _ = fill(tmp_path / "ev")
    (tmp_path / "ev" / record_name(3)).unlink()
    with pytest.raises(EvidenceChainError, match="missing") as info:
        store.verify()
    assert info.value.record == record_name(4)


def test_removal_at_the_end_is_detected(tmp_path):
    store, _ = fill(tmp_path / "ev")
    (tmp_path / "ev" / record_name(5)).unlink()
    with pytest.raises(EvidenceChainError, match="removed"):
        store.verify()


# A HEAD that names no record (or no digest) checks nothing: the whole trail could be cut off.
@pytest.mark.parametrize("head", [
    b'{"seq":0,"sha256":""}', b'{"seq":-1,"sha256":""}', b'{"seq":true,"sha256":"%s"}', b'{"seq":"5","sha256":"%s"}',
    b'{"seq":5.0,"sha256":"%s"}', b'{"seq":5,"sha256":""}', b'{"seq":5,"sha256":"%s "}', b'{"seq":5}', b"[5]", b"null",
])
def test_a_head_that_names_no_record_is_not_valid(tmp_path, head):
    from airflow_aisec.core.trail_index import build_index

    store, _ = fill(tmp_path / "ev")
    real = json.loads((tmp_path / "ev" / HEAD_NAME).read_bytes())
    assert real["seq"] == 5 and build_index(store).broken is None
    (tmp_path / "ev" / HEAD_NAME).write_bytes(head.replace(b"%s", real["sha256"].encode()))
    with pytest.raises(EvidenceChainError, match="HEAD is not valid"):
        store.verify()
    assert build_index(store).broken == "HEAD: HEAD is not valid"  # the UI's index agrees
    for record in range(1, 6):
        (tmp_path / "ev" / record_name(record)).unlink()
    with pytest.raises(EvidenceChainError, match="HEAD is not valid"):  # a trail cut to nothing
        store.verify()


def test_a_head_behind_the_chain_names_a_record_and_its_digest(tmp_path):
    """A writer that stopped between its record and HEAD leaves HEAD one behind: accepted, checked."""
    store, _ = fill(tmp_path / "ev")
    head = tmp_path / "ev" / HEAD_NAME
    real = json.loads(head.read_bytes())
    behind = json.loads((tmp_path / "ev" / record_name(5)).read_bytes())["prev_sha256"]
    head.write_bytes(json.dumps({"seq": 4, "sha256": behind}).encode())
    assert store.verify().records == 5
    head.write_bytes(json.dumps({"seq": 4, "sha256": real["sha256"]}).encode())  # the wrong record's digest
    with pytest.raises(EvidenceChainError, match="does not match HEAD"):
        store.verify()


@pytest.mark.parametrize("which", ["record", "HEAD"])
def test_json_nested_past_the_parsers_recursion_limit_is_a_broken_chain(tmp_path, which):
    """Small enough to be read, too deep for ``json.loads`` (a RecursionError, not a ValueError)."""
    store, _ = fill(tmp_path / "ev")
    target = tmp_path / "ev" / (record_name(2) if which == "record" else HEAD_NAME)
    target.chmod(0o644)
    target.write_bytes(b"[" * 100_000)
    with pytest.raises(EvidenceChainError, match="not valid"):
        store.verify()
    if which == "record":
        with pytest.raises(EvidenceChainError, match="not valid JSON"):
            store.read_records()


def test_reorder_is_detected(tmp_path):
    store, _ = fill(tmp_path / "ev")
    a, b = tmp_path / "ev" / record_name(2), tmp_path / "ev" / record_name(3)
    tmp = tmp_path / "swap"
    shutil.move(a, tmp)
    shutil.move(b, a)
    shutil.move(tmp, b)
    with pytest.raises(EvidenceChainError, match="reordered") as info:
        store.verify()
    assert info.value.record == record_name(2)


def test_insert_is_detected(tmp_path):
    store, _ = fill(tmp_path / "ev")
    (tmp_path / "ev" / "000000000003a.json").write_text("{}")
    with pytest.raises(EvidenceChainError, match="inserted"):
        store.verify()


def test_insert_by_renumbering_is_detected(tmp_path):
    from airflow_aisec.core.evidence import build_record

    store, refs = fill(tmp_path / "ev", 3)
    d = tmp_path / "ev"
    # push record 3 to 4 and forge a new 3 that links to 2
    os.rename(d / record_name(3), d / record_name(4))
    (d / record_name(3)).write_bytes(build_record(3, refs[1].sha256, "gate_result", {"forged": True}))
    with pytest.raises(EvidenceChainError) as info:
        store.verify()
    assert info.value.record == record_name(4)


def test_non_json_payload_is_refused_before_writing(tmp_path):
    store = open_evidence_store(tmp_path / "ev")
    with pytest.raises(TypeError):
        store.append({"x": object()})
    assert not list((tmp_path / "ev").glob("*.json"))


def _worker(location: str, endpoint: str | None, n: int, tag: int) -> None:
    client = None
    if endpoint:
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
    store = open_evidence_store(location, s3_client=client)
    for i in range(n):
        store.append({"writer": tag, "i": i})


def _run_parallel(location: str, endpoint: str | None, writers=4, each=10):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(location, endpoint, each, w)) for w in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    return writers * each


def test_parallel_processes_keep_one_chain_local(tmp_path):
    total = _run_parallel(str(tmp_path / "ev"), None)
    store = open_evidence_store(tmp_path / "ev")
    assert store.verify().records == total
    seen = {(r["payload"]["writer"], r["payload"]["i"]) for r in store.read_records()}
    assert len(seen) == total


@pytest.mark.integration
def test_parallel_processes_keep_one_chain_s3(s3_server):
    client = s3_server.client()
    client.create_bucket(Bucket="aisec-evidence")
    total = _run_parallel("s3://aisec-evidence/trail", s3_server.endpoint, writers=3, each=8)
    store = open_evidence_store("s3://aisec-evidence/trail", s3_client=client)
    assert store.verify().records == total
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="aisec-evidence")["Contents"]]
    assert f"trail/{HEAD_NAME}" in keys and "trail/000000000001.json" in keys


@pytest.mark.integration
def test_s3_tamper_detected_and_cli_names_record(s3_server, aisec_cli):
    client = s3_server.client()
    client.create_bucket(Bucket="aisec-evidence-2")
    _store, _ = fill("s3://aisec-evidence-2/t", 4, s3_client=client)
    ok = aisec_cli("audit", "verify", "s3://aisec-evidence-2/t")
    assert ok.returncode == 0, ok.stderr
    assert "4 record(s)" in ok.stdout
    client.delete_object(Bucket="aisec-evidence-2", Key="t/" + record_name(2))
    bad = aisec_cli("audit", "verify", "s3://aisec-evidence-2/t")
    assert bad.returncode == 1
    assert record_name(3) in bad.stdout


def test_cli_verify_names_first_bad_record(tmp_path, aisec_cli):
    fill(tmp_path / "ev", 4)
    assert aisec_cli("audit", "verify", str(tmp_path / "ev")).returncode == 0
    _rewrite(tmp_path / "ev" / record_name(2), lambda d: d.update(kind="forged"))
    out = aisec_cli("audit", "verify", str(tmp_path / "ev"))
    assert out.returncode == 1
    assert f"first bad record: {record_name(2)}" in out.stdout
    shown = aisec_cli("audit", "show", str(tmp_path / "ev"))
    assert shown.returncode == 0 and shown.stdout.count("\n") == 4


@pytest.mark.integration
def test_s3_endpoint_that_ignores_conditional_writes_is_refused(s3_server):
    # Appends never overwrite only because the server honours If-None-Match; an S3-compatible store
    # that silently ignores it would let racing writers overwrite each other's records.
    client = s3_server.client()
    client.create_bucket(Bucket="aisec-evidence-3")

    class IgnoresIfNoneMatch:
        def __init__(self, real):
            self._real = real

        def __getattr__(self, attr):
            return getattr(self._real, attr)

        def put_object(self, **kw):
            kw.pop("IfNoneMatch", None)
            return self._real.put_object(**kw)

    from airflow_aisec.exceptions import ConfigurationError

    lax = open_evidence_store("s3://aisec-evidence-3/t", s3_client=IgnoresIfNoneMatch(client))
    with pytest.raises(ConfigurationError, match="If-None-Match"):
        lax.append({"gate": "pii", "verdict": "pass"})
    honest = open_evidence_store("s3://aisec-evidence-3/u", s3_client=client)
    refs = [honest.append({"i": i}) for i in range(3)]
    assert [r.seq for r in refs] == [1, 2, 3] and honest.verify().records == 3
