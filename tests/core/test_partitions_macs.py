"""MACs of partition summaries and of the partition list (``core/partition_macs.py``): real pii summaries of
a planted table, signed and verified with real keys; every binding (run, content, partition, key) is
checked by changing exactly that and nothing else."""

from __future__ import annotations

import json

import pytest

from airflow_aisec.core.gates.pii.summary import summarize_partition
from airflow_aisec.core.gates.secrets import new_handoff_key
from airflow_aisec.core.partition_macs import (
    MAC_FIELD,
    RULE_MANIFEST,
    partition_keys,
    sign_manifest,
    sign_summary,
    verify_manifest,
    verify_summary,
)
from airflow_aisec.core.partitions import RULE_TAMPERED, list_partitions, load_summary, sha256_json
from airflow_aisec.core.policy.sections.pii import PiiPolicy
from airflow_aisec.exceptions import ConfigurationError, SecurityViolationError
from tests.helpers.partitions import assert_value_free, planted_table, write_whole

RUN = {"dag_id": "lake", "run_id": "manual__2026-01-01"}


def _policy() -> PiiPolicy:
    return PiiPolicy.model_validate({"levels": {"internal": {"allowed": ["EMAIL_ADDRESS"]}},
                                     "scan": {"batch_rows": 64}, "min_count": 1})


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    path = write_whole(planted_table(), tmp_path_factory.mktemp("macs") / "t.parquet", row_group_size=250)
    uris = list_partitions(str(path), by="row_group")
    return [summarize_partition(_policy(), u, partition_id=u) for u in uris]


@pytest.fixture(scope="module")
def keys():
    return partition_keys(new_handoff_key())


def _roundtrip(d):
    return json.loads(json.dumps(d))  # what XCom gives back


def test_a_signed_summary_verifies_for_its_run_and_loads(parts, keys):
    signed = _roundtrip(sign_summary(parts[2].signed_json(), keys, **RUN))
    content = verify_summary(signed, keys, **RUN)
    assert MAC_FIELD not in content and load_summary("pii", content).digest() == parts[2].digest()
    assert_value_free(signed)


def test_a_clean_summary_with_a_recomputed_digest_does_not_verify(parts, keys):
    signed = _roundtrip(sign_summary(parts[1].signed_json(), keys, **RUN))
    assert signed["columns"]["notes"]["entities"], "row group 1 holds the planted SSN"
    forged = {k: v for k, v in signed.items() if k not in ("digest", MAC_FIELD)}
    forged["columns"]["notes"]["entities"] = {}
    forged = {**forged, "digest": sha256_json(forged), MAC_FIELD: signed[MAC_FIELD]}
    load_summary("pii", {k: v for k, v in forged.items() if k != MAC_FIELD})  # the sha256 alone is fooled
    with pytest.raises(SecurityViolationError) as info:
        verify_summary(forged, keys, **RUN)
    assert info.value.rule == RULE_TAMPERED


@pytest.mark.parametrize("change", ["run_id", "dag_id"])
def test_a_summary_from_another_run_does_not_verify(parts, keys, change):
    signed = sign_summary(parts[0].signed_json(), keys, **RUN)
    with pytest.raises(SecurityViolationError) as info:
        verify_summary(signed, keys, **{**RUN, change: RUN[change] + "-other"})
    assert info.value.rule == RULE_TAMPERED


def test_a_summary_moved_to_another_partition_or_unsigned_does_not_verify(parts, keys):
    signed = sign_summary(parts[0].signed_json(), keys, **RUN)
    moved = {**signed, "partition": parts[3].partition}
    moved["digest"] = sha256_json({k: v for k, v in moved.items() if k not in ("digest", MAC_FIELD)})
    unsigned = parts[0].signed_json()
    other_key = sign_summary(parts[0].signed_json(), partition_keys(new_handoff_key()), **RUN)
    for bad in (moved, unsigned, other_key, {**signed, MAC_FIELD: None}, "not a summary"):
        with pytest.raises(SecurityViolationError) as info:
            verify_summary(bad, keys, **RUN)
        assert info.value.rule == RULE_TAMPERED


def test_rotation_the_first_key_signs_and_an_old_key_still_verifies(parts):
    old, new = new_handoff_key(), new_handoff_key()
    signed_with_old = sign_summary(parts[0].signed_json(), partition_keys(old), **RUN)
    rotated = partition_keys(f"{new}, {old}")
    assert verify_summary(signed_with_old, rotated, **RUN)["partition"] == parts[0].partition
    signed_with_new = sign_summary(parts[0].signed_json(), rotated, **RUN)
    assert verify_summary(signed_with_new, partition_keys(new), **RUN)
    with pytest.raises(SecurityViolationError):
        verify_summary(signed_with_new, partition_keys(old), **RUN)


def test_manifest_binds_run_task_and_every_partition(parts, keys):
    uris = [p.partition for p in parts]
    manifest = _roundtrip(sign_manifest(uris, keys, task_id="list", data="/lake/t.parquet", by="row_group", **RUN))
    assert verify_manifest(manifest, keys, task_id="list", **RUN) == uris
    dropped = {**manifest, "partitions": uris[1:]}
    bad = [
        (dropped, {}),
        ({**manifest, "partitions": [*uris, uris[0]]}, {}),
        ({**manifest, "data": "/lake/other"}, {}),
        ({k: v for k, v in manifest.items() if k != MAC_FIELD}, {}),
        (None, {}),  # never pushed
        (manifest, {"run_id": "another-run"}),
        (manifest, {"task_id": "another_task"}),
    ]
    for value, change in bad:
        with pytest.raises(SecurityViolationError) as info:
            verify_manifest(value, keys, **{"task_id": "list", **RUN, **change})
        assert info.value.rule == RULE_MANIFEST


@pytest.mark.parametrize("raw, match", [("", "handoff_key is not set"), ("  ", "handoff_key is not set"),
                                        ("c2hvcnQ=", "not 32 bytes")])
def test_without_a_usable_key_nothing_is_signed(raw, match):
    with pytest.raises(ConfigurationError, match=match) as info:
        partition_keys(raw)
    assert "\n" not in str(info.value)
