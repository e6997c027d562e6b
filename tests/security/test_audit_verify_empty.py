"""Attack 6 of issue 11: ``aisec audit verify`` on a trail that does not exist printed ``OK ... 0
record(s)`` and exited 0, so a typo or a deleted trail verified. Now: exit 2 with one clear line for a
missing location or one without records; exit 1 for a HEAD naming records that are gone."""

from __future__ import annotations

import json

import pytest


def test_missing_location_exits_2(aisec_cli, tmp_path):
    out = aisec_cli("audit", "verify", str(tmp_path / "no-such-trail"))
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout == ""
    expected = f"aisec: no audit trail at {tmp_path / 'no-such-trail'}: the location does not exist"
    assert out.stderr.strip().splitlines() == [expected]


def test_empty_location_exits_2(aisec_cli, tmp_path):
    (tmp_path / "trail").mkdir()
    out = aisec_cli("audit", "verify", str(tmp_path / "trail"))
    assert out.returncode == 2
    assert "holds no records" in out.stderr and "OK" not in out.stdout


def test_head_naming_more_records_than_exist_exits_1(aisec_cli, tmp_path):
    from airflow_aisec.core.evidence import open_evidence_store

    trail = tmp_path / "trail"
    store = open_evidence_store(trail)
    for i in range(3):
        store.append({"gate": "drift", "verdict": "pass", "n": i})
    assert aisec_cli("audit", "verify", str(trail)).returncode == 0
    for name in ("000000000002.json", "000000000003.json"):
        (trail / name).chmod(0o644)
        (trail / name).unlink()
    out = aisec_cli("audit", "verify", str(trail))
    assert out.returncode == 1 and "HEAD names record 3" in out.stdout
    # every record removed, HEAD left behind: still a broken chain, not an empty trail
    (trail / "000000000001.json").unlink()
    out = aisec_cli("audit", "verify", str(trail))
    assert out.returncode == 1 and "BROKEN" in out.stdout
    assert json.loads((trail / "HEAD").read_text())["seq"] == 3


@pytest.mark.integration
def test_missing_and_empty_s3_locations_exit_2(aisec_cli, s3_server):
    s3_server.client().create_bucket(Bucket="empty-trail")
    out = aisec_cli("audit", "verify", "s3://empty-trail/audit", "--endpoint-url", s3_server.endpoint)
    assert out.returncode == 2 and "holds no records" in out.stderr
    out = aisec_cli("audit", "verify", "s3://no-such-bucket-aisec/audit", "--endpoint-url", s3_server.endpoint)
    assert out.returncode == 2 and "not found" in out.stderr
