"""Attack 1 (cont.) of issue 11: whoever triggers a run picks the policy (``dag_run.conf`` through a
template, or an ``XComArg``), or the DAG names a policy outside the platform's policy directory
(``..``, a symlink). With ``[aisec] policy_roots`` set each gate ends in verdict ``error``, never a pass
and never a fall-back; a run-time policy only with ``[aisec] allow_runtime_policy = True``. Also attack 1's
trail part: a gate's ``evidence_location=`` still lands the record in the central trail. Real DAG runs."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest

pytestmark = pytest.mark.integration

POLICY = "version: 1\nname: {name}\ndrift: {{}}\n"

DAG = '''
import pendulum
from airflow.sdk import DAG, task
from airflow_aisec.core.result import CheckOutcome
from airflow_aisec.operators.base import AisecGateOperator


class AlwaysPasses(AisecGateOperator):
    gate = "drift"

    def check(self, loaded, context):
        return CheckOutcome(metrics={{"policy": loaded.name}})


with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False):
    @task
    def pick():
        return {outside!r}

    AlwaysPasses(task_id="literal_inside", policy={inside!r})
    AlwaysPasses(task_id="from_conf", policy="{{{{ dag_run.conf.get('policy', '{inside}') }}}}")
    AlwaysPasses(task_id="from_xcom", policy=pick())
    AlwaysPasses(task_id="outside", policy={outside!r})
    AlwaysPasses(task_id="dotdot", policy={dotdot!r})
    AlwaysPasses(task_id="symlink", policy={symlink!r})
    AlwaysPasses(task_id="own_trail", policy={inside!r}, evidence_location={own_trail!r})
'''


@pytest.fixture
def layout(tmp_path, monkeypatch):
    roots = tmp_path / "platform-policies"
    roots.mkdir()
    (roots / "ok.yaml").write_text(POLICY.format(name="platform-ok"))
    (tmp_path / "evil.yaml").write_text(POLICY.format(name="strict"))
    (roots / "link.yaml").symlink_to(tmp_path / "evil.yaml")
    central = tmp_path / "central-trail"
    monkeypatch.setenv("AIRFLOW__AISEC__POLICY_ROOTS", f"{roots}, s3://platform-policies/aisec")
    monkeypatch.setenv("AIRFLOW__AISEC__EVIDENCE_LOCATION", str(central))
    dag_id = f"sec_policy_source_{uuid.uuid4().hex[:6]}"
    source = DAG.format(dag_id=dag_id, inside=str(roots / "ok.yaml"), outside=str(tmp_path / "evil.yaml"),
                        dotdot=str(roots / ".." / "evil.yaml"), symlink=str(roots / "link.yaml"),
                        own_trail=str(tmp_path / "author-trail"))
    return {"source": source, "dag_id": dag_id, "central": central, "own_trail": tmp_path / "author-trail",
            "evil": str(tmp_path / "evil.yaml")}


def _errors(out, *tasks):
    for task in tasks:
        assert out.task_states[task] == "failed", (task, out.task_states)
        result = out.xcom(task)
        assert result["verdict"] == "error", (task, result)
        assert result["error"]["type"] == "PolicyError"
        assert result["policy"] is None  # never a fall-back to another policy
    return {t: out.xcom(t)["error"]["message"] for t in tasks}


def test_policies_outside_the_roots_or_chosen_at_run_time_are_refused(run_dag, layout):
    out = run_dag(layout["source"], layout["dag_id"], run_conf={"policy": layout["evil"]})
    assert out.task_states["literal_inside"] == "success"
    assert out.xcom("literal_inside")["metrics"] == {"policy": "platform-ok"}
    messages = _errors(out, "from_conf", "from_xcom", "outside", "dotdot", "symlink")
    assert "allow_runtime_policy" in messages["from_conf"] and "allow_runtime_policy" in messages["from_xcom"]
    for task in ("outside", "dotdot", "symlink"):
        assert "outside [aisec] policy_roots" in messages[task]


def test_runtime_policy_is_accepted_only_when_the_platform_allows_it(run_dag, layout, monkeypatch):
    monkeypatch.setenv("AIRFLOW__AISEC__ALLOW_RUNTIME_POLICY", "True")
    out = run_dag(layout["source"], layout["dag_id"], run_conf={"policy": layout["evil"]})
    # allowed at run time, but still only from the roots: conf pointing outside is refused
    assert "outside [aisec] policy_roots" in _errors(out, "from_conf", "from_xcom")["from_conf"]
    out = run_dag(layout["source"], layout["dag_id"])  # conf default: the platform's policy
    assert out.task_states["from_conf"] == "success"
    assert out.xcom("from_conf")["metrics"] == {"policy": "platform-ok"}


def test_a_gates_own_evidence_location_is_only_a_copy(run_dag, layout):
    from airflow_aisec.core.evidence import open_evidence_store

    out = run_dag(layout["source"], layout["dag_id"])
    ref = out.xcom("own_trail", "aisec_evidence")
    assert ref["location"] == str(layout["central"])  # the XCom anchor names the central record
    central = open_evidence_store(layout["central"])
    central.verify(require_records=True)
    record = central.read_record(ref["name"])
    assert hashlib.sha256(record).hexdigest() == ref["sha256"]
    payload = json.loads(record)["payload"]
    assert payload == out.xcom("own_trail") and payload["airflow"]["task_id"] == "own_trail"
    copies = [r["payload"] for r in open_evidence_store(layout["own_trail"]).read_records()]
    assert copies == [payload]
    # every gate of the run is in the central trail, refused ones included
    tasks = {r["payload"]["airflow"]["task_id"] for r in central.read_records()
             if r["payload"].get("airflow", {}).get("run_id") == out.run_id}
    assert tasks == {"literal_inside", "from_conf", "from_xcom", "outside", "dotdot", "symlink", "own_trail"}
