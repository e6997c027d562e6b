"""The gate operator contract in real Airflow runs: pass, fail, warn, error, missing policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.airflow import assert_retryable_error, task_context
from tests.helpers.no_io import forbid_io

pytestmark = pytest.mark.integration

POLICY = """
version: 1
name: base-test
enforcement: enforce
rules:
  drift.soft: warn
drift: {}
"""

DAG_TEMPLATE = '''
import pendulum
from airflow.sdk import DAG, task
from airflow_aisec.core.result import CheckOutcome, Finding
from airflow_aisec.operators.base import AisecGateOperator


class RowLimitGate(AisecGateOperator):
    """Test gate: counts lines of a file and flags files over a limit."""

    gate = "drift"
    template_fields = (*AisecGateOperator.template_fields, "path")

    def __init__(self, *, path, limit, rule="drift.rows", explode=None, **kwargs):
        super().__init__(**kwargs)
        self.path, self.limit, self.rule, self.explode = path, limit, rule, explode

    def check(self, loaded, context):
        if self.explode:
            raise RuntimeError(self.explode)
        rows = sum(1 for _ in open(self.path))
        findings = []
        if rows > self.limit:
            findings.append(Finding(rule=self.rule, message=f"{{rows}} rows > limit {{self.limit}}", count=rows,
                                    location={{"file": self.path}}))
        return CheckOutcome(findings=findings, metrics={{"rows": rows}})


with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False) as dag:
    @task
    def extract():
        with open({data!r}, "w") as fh:
            fh.write("a\\nb\\nc\\n")
        return {data!r}

    @task
    def train(path):
        return "trained"

    data = extract()
    gate = RowLimitGate(task_id="row_gate", path={data!r}, policy={policy!r}, evidence_location={evidence!r},
                        {extra})
    data >> gate >> train(data)
'''


@pytest.fixture
def make_dag(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    evidence = tmp_path / "evidence"

    def _make(dag_id: str, extra: str, policy_path: str | None = None) -> str:
        return DAG_TEMPLATE.format(
            dag_id=dag_id,
            data=str(tmp_path / f"{dag_id}.csv"),
            policy=policy_path or str(policy),
            evidence=str(evidence),
            extra=extra,
        )

    _make.evidence = evidence
    return _make


def _evidence_payloads(evidence: Path):
    from airflow_aisec.core.evidence import open_evidence_store

    store = open_evidence_store(evidence)
    store.verify()
    return [r["payload"] for r in store.read_records()]


def test_passing_gate_lets_the_run_succeed(run_dag, make_dag):
    out = run_dag(make_dag("gate_pass", "limit=10"), "gate_pass")
    assert out.state == "success"
    assert out.task_states == {"extract": "success", "row_gate": "success", "train": "success"}
    result = out.xcom("row_gate")
    assert result["verdict"] == "pass"
    assert result["metrics"] == {"rows": 3}
    assert result["policy"]["name"] == "base-test" and len(result["policy"]["sha256"]) == 64
    assert result["airflow"]["dag_id"] == "gate_pass" and result["airflow"]["run_id"] == out.run_id
    evidence = out.xcom("row_gate", "aisec_evidence")
    assert evidence["seq"] >= 1 and len(evidence["sha256"]) == 64
    payloads = _evidence_payloads(make_dag.evidence)
    assert payloads[-1]["airflow"]["dag_id"] == "gate_pass"


def test_violation_fails_the_run_and_blocks_downstream(run_dag, make_dag):
    out = run_dag(make_dag("gate_fail", "limit=2"), "gate_fail")
    assert out.state == "failed"
    assert out.task_states == {"extract": "success", "row_gate": "failed", "train": "upstream_failed"}
    result = out.xcom("row_gate")
    assert result["verdict"] == "fail"
    (finding,) = result["findings"]
    assert finding["rule"] == "drift.rows" and finding["enforcement"] == "enforce"
    assert "3 rows > limit 2" in finding["message"]
    assert _evidence_payloads(make_dag.evidence)[-1]["verdict"] == "fail"


def test_warn_level_succeeds_with_verdict_warn(run_dag, make_dag):
    out = run_dag(make_dag("gate_warn", "limit=2, rule='drift.soft'"), "gate_warn")
    assert out.state == "success"
    assert out.xcom("row_gate")["verdict"] == "warn"


def test_internal_error_fails_closed_without_leaking_the_message(run_dag, make_dag):
    out = run_dag(make_dag("gate_error", "limit=10, explode='hunter2-secret'"), "gate_error")
    assert out.state == "failed"
    assert out.task_states["row_gate"] == "failed"
    assert out.task_states["train"] == "upstream_failed"
    result = out.xcom("row_gate")
    assert result["verdict"] == "error" and result["error"]["type"] == "RuntimeError"
    assert "hunter2-secret" not in json.dumps(result)
    assert "hunter2-secret" not in json.dumps(_evidence_payloads(make_dag.evidence))


@pytest.mark.parametrize(
    ("policy_text", "reason"),
    [
        (None, "policy file not found"),
        ("name: x\nbogus: 1\n", "unknown key"),
        ("name: x\n", "no 'drift' section"),
    ],
)
def test_bad_policy_fails_the_task(run_dag, make_dag, tmp_path, policy_text, reason):
    path = tmp_path / "bad-policy.yaml"
    if policy_text is not None:
        path.write_text(policy_text)
    dag_id = f"gate_badpolicy_{abs(hash(reason)) % 10000}"
    out = run_dag(make_dag(dag_id, "limit=10", policy_path=str(path)), dag_id)
    assert out.state == "failed"
    assert out.task_states["row_gate"] == "failed"
    result = out.xcom("row_gate")
    assert result["verdict"] == "error" and reason in result["error"]["message"]


# ------------------------------------------------------------------------------------------
# Unit level: retryable vs non-retryable, no I/O at construction
# ------------------------------------------------------------------------------------------
class _Gate:
    @staticmethod
    def build(tmp_path, exc):
        from airflow_aisec.operators.base import AisecGateOperator

        class Boom(AisecGateOperator):
            gate = "drift"

            def check(self, loaded, context):
                raise exc

        policy = tmp_path / "p.yaml"
        policy.write_text(POLICY)
        return Boom(task_id="t", policy=str(policy), evidence_location=str(tmp_path / "ev"))


def test_unreachable_service_is_retryable_never_a_pass(tmp_path):
    from airflow_aisec.exceptions import ServiceUnavailableError

    op = _Gate.build(tmp_path, ServiceUnavailableError("vault unreachable"))
    ctx = task_context()
    assert_retryable_error(lambda: op.execute(ctx), ctx)


def test_configuration_error_is_not_retryable(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_aisec.exceptions import InputDataError

    op = _Gate.build(tmp_path, InputDataError("column 'x' missing"))
    with pytest.raises(AirflowFailException, match="column 'x' missing"):
        op.execute(task_context())


def test_unwritable_evidence_store_fails_the_task(tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowException

    from airflow_aisec.operators.base import AisecGateOperator

    class Ok(AisecGateOperator):
        gate = "drift"

        def check(self, loaded, context):
            from airflow_aisec.core.result import CheckOutcome

            return CheckOutcome()

    (tmp_path / "p.yaml").write_text(POLICY)
    (tmp_path / "file").write_text("not a dir")
    # The gate's own evidence_location is only an extra copy: failing to write it is logged, not fatal.
    op = Ok(task_id="t", policy=str(tmp_path / "p.yaml"), evidence_location=str(tmp_path / "file" / "ev"))
    assert op.execute(task_context()) == "pass"
    # The central trail ([aisec] evidence_location) is what must be written.
    monkeypatch.setenv("AIRFLOW__AISEC__EVIDENCE_LOCATION", str(tmp_path / "file" / "ev"))
    op = Ok(task_id="t", policy=str(tmp_path / "p.yaml"))
    with pytest.raises(AirflowException, match="could not record evidence"):
        op.execute(task_context())


def test_constructor_does_no_io(tmp_path):
    from airflow_aisec.operators.base import AisecGateOperator

    class G(AisecGateOperator):
        gate = "drift"

    with forbid_io("AisecGateOperator.__init__"):
        G(task_id="t", policy="/does/not/exist.yaml", evidence_location="s3://nowhere/x")
    assert set(AisecGateOperator.template_fields) >= {"policy", "evidence_location"}
