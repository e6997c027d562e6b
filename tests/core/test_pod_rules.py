"""Pod isolation rules (``platform.pod_*``) on real KubernetesPodOperator arguments and ``V1Pod`` overrides,
described through the cluster policy's ``describe_dag`` (kubernetes is converted on the Airflow side)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from airflow_aisec.core.gates.platform import DagSpec, TaskSpec, check_dag, image_registry, judge_pod
from airflow_aisec.core.policy import parse_policy
from airflow_aisec.exceptions import PolicyError
from tests.helpers.pod_dags import DIGEST_IMAGE, HARDENED_DAG, INSECURE_DAG, INSECURE_RULES, POD_POLICY


def rules_section(**overrides):
    sec = parse_policy(POD_POLICY.encode()).section("platform")
    return sec.pods.model_copy(update=overrides) if overrides else sec.pods


def _described(tmp_path, source: str, dag_id: str) -> DagSpec:
    """Parse a DAG file with Airflow's DagBag in a subprocess (KubernetesPodOperator DAGs load the kubernetes
    provider, which must not change this process's Airflow plugin state) and describe it with the cluster
    policy's ``describe_dag``; the description comes back as JSON: plain dicts all the way down."""
    path = tmp_path / f"{dag_id}.py"
    path.write_text(source)
    code = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "from airflow_aisec.cluster_policy import describe_dag\n"
        f"bag = DagBag(dag_folder={str(path)!r})\n"
        "assert not bag.import_errors, bag.import_errors\n"
        f"print(json.dumps(describe_dag(bag.dags[{dag_id!r}]).to_dict()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    tasks = [TaskSpec(t["task_id"], tuple(t["classes"]), t["gate"], tuple(t["upstream"]), t["trigger_rule"],
                      t["approves"], tuple((p["source"], p["pod"]) for p in t["pods"])) for t in doc["tasks"]]
    return DagSpec.build(doc["dag_id"], tasks, tags=doc["tags"])


def findings_by_task(dag_spec: DagSpec) -> dict[str, set[str]]:
    section = parse_policy(POD_POLICY.encode()).section("platform")
    out: dict[str, set[str]] = {}
    for f in check_dag(section, dag_spec).findings:
        out.setdefault(f.location["task_id"], set()).add(f.rule)
    return out


# ------------------------------------------------------------------------------------------
# Plain dicts (the core never sees kubernetes objects)
# ------------------------------------------------------------------------------------------
GOOD_CONTAINER = {"name": "c", "image": DIGEST_IMAGE, "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                  "securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True}}


def test_compliant_pod_dict_passes_in_camel_and_snake_case():
    camel = {"spec": {"containers": [GOOD_CONTAINER]}}
    snake = {"spec": {"containers": [{"name": "c", "image": DIGEST_IMAGE,
                                      "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                                      "security_context": {"run_as_non_root": True,
                                                           "read_only_root_filesystem": True}}]}}
    assert judge_pod(rules_section(), camel) == {}
    assert judge_pod(rules_section(), snake) == {}


@pytest.mark.parametrize(("patch", "rule"), [
    ({"hostNetwork": True}, "pod_host_network"),
    ({"hostPID": True}, "pod_host_pid"),
    ({"hostIPC": True}, "pod_host_ipc"),
    ({"volumes": [{"name": "v", "hostPath": {"path": "/"}}]}, "pod_host_path"),
    ({"securityContext": {"runAsUser": 0}}, "pod_run_as_root"),
])
def test_pod_level_violations(patch, rule):
    assert set(judge_pod(rules_section(), {"spec": {"containers": [GOOD_CONTAINER], **patch}})) == {rule}


@pytest.mark.parametrize(("container", "rule"), [
    ({"securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "privileged": True}}, "pod_privileged"),
    ({"securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True,
                          "allowPrivilegeEscalation": True}}, "pod_privileged"),
    ({"securityContext": {"runAsNonRoot": True}}, "pod_writable_root_fs"),
    ({"securityContext": {"readOnlyRootFilesystem": True}}, "pod_run_as_root"),
    ({"resources": {"limits": {"cpu": "1"}}}, "pod_resource_limits"),
    ({"image": "registry.example.com/ml/train:v1"}, "pod_image_digest"),
    ({"image": "evil.example/ml/train@sha256:" + "4f" * 32}, "pod_image_registry"),
])
def test_container_level_violations(container, rule):
    pod = {"spec": {"containers": [{**GOOD_CONTAINER, **container}]}}
    assert set(judge_pod(rules_section(), pod)) == {rule}


def test_init_containers_count_and_pod_level_non_root_is_inherited():
    pod = {"spec": {"securityContext": {"runAsNonRoot": True},
                    "containers": [{**GOOD_CONTAINER, "securityContext": {"readOnlyRootFilesystem": True}}],
                    "initContainers": [{"name": "init", "image": "busybox"}]}}
    hits = judge_pod(rules_section(), pod)
    assert set(hits) == {"pod_writable_root_fs", "pod_resource_limits", "pod_image_digest", "pod_image_registry"}
    assert all(w.startswith("init") for ws in hits.values() for w in ws)


def test_unreadable_pod_spec_is_a_finding():
    assert set(judge_pod(rules_section(), None)) == {"pod_spec_unreadable"}


def test_image_registry_parsing():
    assert image_registry("python:3.11") == ("docker.io", "python")
    assert image_registry("localhost:5000/a/b:1") == ("localhost:5000", "a/b")
    assert image_registry("registry.example.com/ml/train@sha256:" + "0" * 64) == ("registry.example.com", "ml/train")


def test_rules_apply_only_to_tagged_dags():
    task = TaskSpec("t", pods=(("executor_config.pod_override", {"spec": {"hostPID": True, "containers": []}}),))
    section = parse_policy(POD_POLICY.encode()).section("platform")
    assert check_dag(section, DagSpec.build("d", [task], tags=["other"])).findings == []
    assert {f.rule for f in check_dag(section, DagSpec.build("d", [task], tags=["training"])).findings} == {
        "platform.pod_host_pid"}


@pytest.mark.parametrize("body", [
    "platform: {pods: {allowed_registries: []}}",
    "platform: {pods: {allowed_registries: ['*']}}",
    "platform: {pods: {run_as_non_root: 'yes'}}",
    "platform: {pods: {dag_tags: []}}",
])
def test_invalid_pod_rules_are_refused(body):
    with pytest.raises(PolicyError):
        parse_policy(f"name: t\n{body}\n".encode())


# ------------------------------------------------------------------------------------------
# Real KubernetesPodOperator / V1Pod, through the cluster policy's description
# ------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_insecure_pods_from_real_operators(tmp_path):
    spec = _described(tmp_path, INSECURE_DAG, "insecure_training_pods")
    assert findings_by_task(spec) == INSECURE_RULES
    # V1Pod and plain-dict overrides are judged the same way
    assert spec.tasks["override_v1pod"].pods[0][0] == "executor_config.pod_override"


@pytest.mark.integration
def test_hardened_pods_from_real_operators(tmp_path):
    spec = _described(tmp_path, HARDENED_DAG, "hardened_training_pods")
    assert findings_by_task(spec) == {}
    pod = spec.tasks["train"].pods[0][1]
    assert pod["spec"]["containers"][0]["image"] == DIGEST_IMAGE  # plain, JSON-serialisable dicts
    assert pod["spec"]["securityContext"] == {"runAsNonRoot": True, "runAsUser": 1000}


@pytest.mark.integration
def test_pod_template_file_is_judged_and_an_unreadable_one_fails(tmp_path):
    template = tmp_path / "pod.yaml"
    template.write_text("apiVersion: v1\nkind: Pod\nspec:\n  hostNetwork: true\n  containers:\n  - name: base\n")
    laughs = tmp_path / "laughs.yaml"
    levels = ["x0: &a0 [" + ", ".join(['"x"'] * 10) + "]"]
    levels += [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    laughs.write_text("apiVersion: v1\nkind: Pod\n" + "\n".join(levels)
                      + "\nspec:\n  containers: [{name: base, args: *a7}]\n")
    source = f'''
import pendulum
from airflow.sdk import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
with DAG("templated_pods", schedule=None, start_date=pendulum.datetime(2024, 1, 1), tags=["training"]):
    KubernetesPodOperator(task_id="from_template", image="{DIGEST_IMAGE}", pod_template_file="{template}")
    KubernetesPodOperator(task_id="missing_template", image="{DIGEST_IMAGE}",
                          pod_template_file="{tmp_path / 'absent.yaml'}")
    KubernetesPodOperator(task_id="laughs", image="{DIGEST_IMAGE}", pod_template_file="{laughs}")
'''
    found = findings_by_task(_described(tmp_path, source, "templated_pods"))
    assert "platform.pod_host_network" in found["from_template"]
    assert found["missing_template"] == {"platform.pod_spec_unreadable"}
    # 1 kB of nested aliases holding 10^8 values: refused as unreadable, not walked (that never ended).
    assert found["laughs"] == {"platform.pod_spec_unreadable"}
