"""No usable credential in XCom: the secrets hand-off is sealed with a key only workers hold.

Attack: a read-only viewer reads ``aisec_secret_handles`` through the REST API while the consumer
task has not run yet and tries to unwrap whatever it holds with OpenBao's ``sys/wrapping/unwrap``
(as a bearer token, and even with a real Vault token). Then the consumer runs and gets the
secret exactly once, audited.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests.helpers.airflow import task_context
from tests.security.live import HANDOFF, HANDOFF_PATH, HANDOFF_SECRET, new_handoff_key

pytestmark = pytest.mark.integration


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return [value]
        return [value, *_strings(parsed)] if not isinstance(parsed, str) else [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.fixture(scope="module")
def waiting_run(security_airflow):
    """A run whose gate handed the secret off and whose consumer waits (until the test releases it)."""
    sa = security_airflow
    sa.live.wait_for_dag(HANDOFF)
    run_id = sa.live.trigger(HANDOFF)
    assert sa.wait_for_task(HANDOFF, run_id, "fetch", {"success", "failed"}) == "success", sa.live.logs()
    sa.wait_for_task(HANDOFF, run_id, "wait_for_release", {"up_for_reschedule", "running"})
    return run_id


def test_a_viewer_cannot_unwrap_anything_from_the_handoff_xcom(security_airflow, waiting_run):
    import hvac
    from hvac.exceptions import VaultError

    sa = security_airflow
    status, body = sa.as_user("viewer", "GET", sa.xcom_path(HANDOFF, waiting_run, "fetch", "aisec_secret_handles"))
    assert status == 200, body
    assert HANDOFF_SECRET not in json.dumps(body)
    candidates = sorted(set(_strings(body["value"])))
    assert any(c.startswith("aisec-sealed:") for c in candidates)  # what XCom carries instead of a token
    root = hvac.Client(url=sa.bao_addr, token=sa.bao_token)
    unwrapped = []
    for candidate in candidates:
        for attempt in (
            lambda c=candidate: hvac.Client(url=sa.bao_addr, token=c).sys.unwrap(),  # as the bearer token
            lambda c=candidate: root.sys.unwrap(c),  # even with a Vault token of its own
        ):
            try:
                response = attempt()
            except (VaultError, ValueError, TypeError):
                continue
            unwrapped.append(response)
    assert unwrapped == []
    # The viewer may not write XComs either (no way to swap in a hand-off of its own).
    status, _ = sa.as_user("viewer", "PATCH", sa.xcom_path(HANDOFF, waiting_run, "fetch", "aisec_secret_handles"),
                           {"value": {"handles": []}})
    assert status == 403


def test_the_consumer_still_gets_the_secret_once_and_it_is_audited(security_airflow, waiting_run):
    from airflow_aisec.core.evidence import open_evidence_store

    sa = security_airflow
    sa.flag.touch()  # release the consumer
    assert sa.live.wait_for_run(HANDOFF, waiting_run) == "success", sa.live.logs()
    consumed = (sa.side / "consumed.sha256").read_text()
    assert consumed == hashlib.sha256(HANDOFF_SECRET.encode()).hexdigest()
    records = open_evidence_store(str(sa.evidence)).read_records()
    unwraps = [r["payload"] for r in records if r["kind"] == "secret_unwrapped"
               and r["payload"]["airflow"]["run_id"] == waiting_run]
    assert len(unwraps) == 1 and unwraps[0]["airflow"]["task_id"] == "consume"
    assert [h["path"] for h in unwraps[0]["handles"]] == [HANDOFF_PATH]
    assert "token" not in json.dumps(unwraps)
    blob = json.dumps(records)
    assert HANDOFF_SECRET not in blob and "aisec-sealed:" not in blob


# --- the sealing itself (no Airflow, real cryptography) --------------------------------------------
def _handles():
    from airflow_aisec.core.gates.secrets import SecretHandle

    return [SecretHandle(path="ml/db", mount="secret", creation_path="secret/data/ml/db", token="hvs.wrap-token-1",
                         accessor="acc-1", ttl=60, created_at="2025-01-01T00:00:00+00:00",
                         expires_at="2025-01-01T00:01:00+00:00")]


def test_a_sealed_handoff_opens_only_for_its_run_task_and_handle():
    from airflow_aisec.core.gates.secrets import open_handles, parse_handoff_keys, seal_handles
    from airflow_aisec.exceptions import ConfigurationError, InputDataError, SecurityViolationError

    keys = parse_handoff_keys(new_handoff_key())
    sealed = seal_handles(_handles(), keys, dag_id="d", run_id="r1", task_id="fetch")
    assert "hvs.wrap-token-1" not in json.dumps(sealed)
    assert open_handles(sealed, keys, dag_id="d", run_id="r1", task_id="fetch")[0].token == "hvs.wrap-token-1"
    for where in ({"dag_id": "d", "run_id": "r2", "task_id": "fetch"},
                  {"dag_id": "other", "run_id": "r1", "task_id": "fetch"},
                  {"dag_id": "d", "run_id": "r1", "task_id": "fetch_other"}):
        with pytest.raises(SecurityViolationError, match="copied from another run or task"):
            open_handles(sealed, keys, **where)
    swapped = json.loads(json.dumps(sealed))
    swapped["handles"][0]["path"] = "ml/other"
    with pytest.raises(SecurityViolationError) as info:
        open_handles(swapped, keys, dag_id="d", run_id="r1", task_id="fetch")
    assert info.value.rule == "secrets.handoff_tampered"
    # Another key: a configuration problem, said plainly; rotation keeps old keys openable.
    other = parse_handoff_keys(new_handoff_key())
    with pytest.raises(ConfigurationError, match="does not hold"):
        open_handles(sealed, other, dag_id="d", run_id="r1", task_id="fetch")
    assert open_handles(sealed, [*other, *keys], dag_id="d", run_id="r1", task_id="fetch")
    # A plain token (what older versions pushed) is refused, never used.
    plain = {"handle_version": 1, "handles": [h.model_dump(mode="json") for h in _handles()]}
    with pytest.raises(InputDataError, match="not sealed"):
        open_handles(plain, keys, dag_id="d", run_id="r1", task_id="fetch")


@pytest.mark.parametrize("raw, match", [("", "handoff_key is not set"), ("c2hvcnQ=", "not 32 bytes"),
                                        ("!!!", "not 32 bytes")])
def test_a_missing_or_bad_key_is_a_clear_configuration_error(raw, match):
    from airflow_aisec.core.gates.secrets import parse_handoff_keys
    from airflow_aisec.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match=match) as info:
        parse_handoff_keys(raw)
    assert raw not in str(info.value) or not raw


def test_without_a_key_the_gate_hands_nothing_off(bao_server, monkeypatch, tmp_path):
    """Fail closed: verdict error naming the setting, no hand-off XCom, nothing wrapped."""
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_aisec import settings
    from airflow_aisec.operators.secrets import VaultSecretsGateOperator
    from tests.helpers.vault import vault_conn_json
    from tests.security.live import SECRETS_POLICY

    policy = tmp_path / "policy.yaml"
    policy.write_text(SECRETS_POLICY)
    monkeypatch.delenv("AIRFLOW__AISEC__HANDOFF_KEY", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_VAULT_NOKEY", vault_conn_json(bao_server.addr, password=bao_server.token))
    settings.reload()
    try:
        op = VaultSecretsGateOperator(task_id="fetch", paths={HANDOFF_PATH: ["password"]}, policy=str(policy),
                                      vault_conn_id="vault_nokey", evidence_location=str(tmp_path / "ev"))
        ctx = task_context(dag_id=HANDOFF, run_id="manual__nokey", task_id="fetch")
        with pytest.raises(AirflowFailException, match="handoff_key is not set"):
            op.execute(ctx)
        pushed = {c.kwargs["key"]: c.kwargs["value"] for c in ctx["ti"].xcom_push.call_args_list}
        assert "aisec_secret_handles" not in pushed
        assert pushed["aisec_result"]["verdict"] == "error"
        assert pushed["aisec_result"]["error"]["type"] == "ConfigurationError"
    finally:
        monkeypatch.undo()
        settings.reload()
