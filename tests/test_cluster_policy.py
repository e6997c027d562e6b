"""Platform rules (core/gates/platform) and the cluster policy that enforces them while Airflow parses DAGs.

Unit part: the rule evaluation on the neutral DAG description (no Airflow). Integration part: real DagBag
parsing with the policy installed through the ``airflow.policy`` entry point, real dag.test() runs, and the
fail-closed behaviour for a broken policy file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from airflow_aisec.core.gates.platform import DagSpec, TaskSpec, check_dag, evaluate_dag
from airflow_aisec.core.policy import load_policy, parse_policy
from airflow_aisec.core.policy.sections.platform import PlatformPolicy
from airflow_aisec.exceptions import PolicyError

REPO = Path(__file__).resolve().parents[1]

POLICY = """
version: 1
name: platform-test
drift: {}
platform:
  rules:
    - id: deploy-needs-drift-gate
      description: a deployed model must pass the drift gate
      dag_tags: [model-deployment]
      targets:
        operators: ["*.BashOperator"]
        task_ids: ["deploy*"]
      require_upstream:
        - gate: drift
"""

GATE = "tests.fake.DriftGate"
BASE = "airflow_aisec.operators.base.AisecGateOperator"


def t(task_id, *up, classes=("x.Op",), gate=None, rule="all_success", approves=None):
    return TaskSpec(task_id=task_id, classes=tuple(classes), gate=gate, upstream=tuple(up), trigger_rule=rule,
                    approves=approves)


def gate_task(task_id="gate", *up, rule="all_success"):
    return t(task_id, *up, classes=(GATE, BASE), gate="drift", rule=rule)


def dag(*tasks, tags=("model-deployment",), dag_id="d"):
    return DagSpec.build(dag_id, tasks, tags=tags)


@pytest.fixture(scope="module")
def loaded():
    return parse_policy(POLICY.encode(), source="platform-test.yaml")


def rules_of(loaded, spec):
    return [(v.rule, v.task_id) for v in evaluate_dag(loaded, spec)]


# ------------------------------------------------------------------------------------------------
# Rule evaluation on the neutral description
# ------------------------------------------------------------------------------------------------
def test_gate_upstream_satisfies_the_rule(loaded):
    spec = dag(t("train"), gate_task("gate", "train"), t("deploy", "gate"))
    assert rules_of(loaded, spec) == []


def test_indirect_gate_upstream_satisfies_the_rule(loaded):
    spec = dag(gate_task("gate"), t("package", "gate"), t("deploy_model", "package"))
    assert rules_of(loaded, spec) == []


def test_missing_gate_names_rule_and_task(loaded):
    spec = dag(t("train"), t("deploy", "train"), dag_id="no_gate")
    [v] = evaluate_dag(loaded, spec)
    assert v.rule == "platform.deploy-needs-drift-gate" and v.task_id == "deploy" and v.blocking
    assert "DAG 'no_gate' task 'deploy'" in v.message and "gate 'drift'" in v.message


def test_gate_downstream_or_beside_does_not_count(loaded):
    beside = dag(gate_task("gate"), t("deploy"))
    after = dag(t("deploy"), gate_task("gate", "deploy"))
    assert rules_of(loaded, beside) == [("platform.deploy-needs-drift-gate", "deploy")]
    assert rules_of(loaded, after) == [("platform.deploy-needs-drift-gate", "deploy")]


def test_every_target_is_checked(loaded):
    spec = dag(gate_task("gate"), t("deploy_a", "gate"), t("deploy_b"),
               t("push", classes=("airflow.providers.standard.operators.bash.BashOperator",)))
    assert sorted(rules_of(loaded, spec)) == [("platform.deploy-needs-drift-gate", "deploy_b"),
                                              ("platform.deploy-needs-drift-gate", "push")]


def test_operator_glob_matches_subclasses(loaded):
    sub = ("my.company.SafeBash", "airflow.providers.standard.operators.bash.BashOperator", "x.BaseOperator")
    spec = dag(t("run_script", classes=sub))
    assert rules_of(loaded, spec) == [("platform.deploy-needs-drift-gate", "run_script")]


@pytest.mark.parametrize("rule", ["all_done", "one_success", "always", "none_failed", "one_failed",
                                  "none_failed_min_one_success", "all_done_min_one_success"])
def test_trigger_rules_that_run_after_a_failed_gate_do_not_count(loaded, rule):
    on_target = dag(gate_task("gate"), t("deploy", "gate", rule=rule))
    in_between = dag(gate_task("gate"), t("step", "gate", rule=rule), t("deploy", "step"))
    for spec in (on_target, in_between):
        [v] = evaluate_dag(loaded, spec)
        assert v.task_id == "deploy" and "would not stop it" in v.message


def test_one_blocking_path_is_enough(loaded):
    # gate -> deploy directly (all_success) plus a side path through an all_done task.
    spec = dag(gate_task("gate"), t("notify", "gate", rule="all_done"), t("deploy", "gate", "notify"))
    assert rules_of(loaded, spec) == []


def test_blocking_trigger_rules_are_configurable():
    text = POLICY.replace("  rules:\n", "  blocking_trigger_rules: [all_success, none_failed_min_one_success]\n"
                                        "  rules:\n", 1)
    relaxed = parse_policy(text.encode())
    spec = dag(gate_task("gate"), t("deploy", "gate", rule="none_failed_min_one_success"))
    assert rules_of(relaxed, spec) == []
    with pytest.raises(PolicyError, match="blocking_trigger_rules"):
        parse_policy(POLICY.replace("  rules:\n", "  blocking_trigger_rules: [all_done]\n  rules:\n", 1).encode())


def test_untagged_or_other_dags_are_not_affected(loaded):
    assert rules_of(loaded, dag(t("deploy"), tags=())) == []
    assert rules_of(loaded, dag(t("deploy"), tags=("reporting",))) == []


def test_star_tag_applies_to_every_dag_even_untagged():
    everywhere = parse_policy(POLICY.replace("dag_tags: [model-deployment]", 'dag_tags: ["*"]').encode())
    assert rules_of(everywhere, dag(t("deploy"), tags=())) == [("platform.deploy-needs-drift-gate", "deploy")]


def test_gate_selector_by_operator_class_and_gate():
    text = POLICY.replace("        - gate: drift", "        - gate: drift\n          operator: '*.Verif*'")
    strict = parse_policy(text.encode())
    wrong_class = dag(gate_task("gate"), t("deploy", "gate"))
    right = dag(t("gate", classes=("airflow_aisec.operators.signing.VerifyGate", BASE), gate="drift"),
                t("deploy", "gate"))
    assert rules_of(strict, wrong_class) == [("platform.deploy-needs-drift-gate", "deploy")]
    assert rules_of(strict, right) == []


def test_approval_route_of_the_same_gate_keeps_the_path_blocking(loaded):
    spec = dag(gate_task("gate"), t("waiver", "gate", rule="all_done", approves="gate"), t("deploy", "waiver"))
    assert rules_of(loaded, spec) == []


def test_approval_blocks_only_for_its_own_gate():
    text = POLICY.replace("        - gate: drift", "        - operator: tests.fake.PiiGate")
    pii_rule = parse_policy(text.encode())
    pii = t("pii_gate", classes=("tests.fake.PiiGate", BASE), gate="pii")
    # pii_gate -> drift gate -> waiver(of the drift gate) -> deploy: the waiver runs after a failed pii
    # gate too (all_done), so it does not carry the pii gate's failure in the model.
    spec = dag(pii, gate_task("gate", "pii_gate"), t("waiver", "gate", rule="all_done", approves="gate"),
               t("deploy", "waiver"))
    assert rules_of(pii_rule, spec) == [("platform.deploy-needs-drift-gate", "deploy")]
    direct = dag(pii, t("deploy", "pii_gate"))
    assert rules_of(pii_rule, direct) == []


def test_waiver_with_a_second_upstream_is_rejected(loaded):
    # A second upstream (gate_a) would be ignored by an all_done waiver: the DAG is rejected.
    miswired = dag(gate_task("gate_a"), gate_task("gate_b"),
                   t("waiver", "gate_a", "gate_b", rule="all_done", approves="gate_b"), t("deploy", "waiver"))
    [v] = evaluate_dag(loaded, miswired)
    assert v.rule == "platform.waiver_route_invalid" and v.task_id == "waiver" and v.blocking


@pytest.mark.parametrize(
    ("tasks", "needle"),
    [
        ((gate_task("gate"), t("waiver", "gate", rule="all_done", approves="nope")), "not in the DAG"),
        ((t("plain"), t("waiver", "plain", rule="all_done", approves="plain")), "not an aisec gate"),
        ((gate_task("gate"), t("other"), t("waiver", "gate", "other", rule="all_done", approves="gate")),
         "exactly one upstream"),
        ((gate_task("gate"), t("waiver", "gate", rule="all_success", approves="gate")), "trigger rule"),
    ],
)
def test_miswired_approval_is_always_a_blocking_violation(tasks, needle):
    # Even a policy without rules (and in audit mode) rejects a waiver wired to bypass its gate.
    lenient = parse_policy(b"version: 1\nname: lenient\nenforcement: audit\nplatform: {}\n")
    [v] = evaluate_dag(lenient, dag(*tasks, tags=()))
    assert v.rule == "platform.waiver_route_invalid" and v.blocking and needle in v.message


def test_enforcement_levels_and_waivers(loaded):
    spec = dag(t("deploy"))
    warn = parse_policy((POLICY + "rules:\n  platform.deploy-*: warn\n").encode())
    [v] = evaluate_dag(warn, spec)
    assert v.enforcement.value == "warn" and not v.blocking
    waived = parse_policy((POLICY + textwrap.dedent("""
        waivers:
          - rule: platform.deploy-needs-drift-gate
            scope: {dag_id: d, task_id: deploy}
            reason: "JIRA-7: legacy DAG, gate lands next sprint"
            approved_by: platform-team@example.com
            expires: 2030-01-31
    """)).encode())
    [v] = evaluate_dag(waived, spec, today=dt.date(2029, 12, 1))
    assert v.waived and not v.blocking
    [v] = evaluate_dag(waived, spec, today=dt.date(2030, 2, 1))
    assert not v.waived and v.blocking


@pytest.mark.parametrize(
    ("snippet", "field"),
    [
        ("platform:\n  rules:\n    - {id: a, dag_tags: [x], targets: {}, require_upstream: [{gate: drift}]}\n",
         "targets"),
        ("platform:\n  rules:\n    - {id: a, dag_tags: [x], targets: {task_ids: [d]}, require_upstream: [{}]}\n",
         "require_upstream"),
        ("platform:\n  rules:\n    - {id: a, dag_tags: [], targets: {task_ids: [d]}, require_upstream: [{gate: x}]}\n",
         "dag_tags"),
        (("platform:\n  rules:\n"
          "    - {id: a, dag_tags: [x], targets: {task_ids: [d]}, require_upstream: [{gate: x}]}\n"
          "    - {id: a, dag_tags: [y], targets: {task_ids: [d]}, require_upstream: [{gate: x}]}\n"), "rules"),
        (("platform:\n  rules:\n    - {id: 'Bad Id', dag_tags: [x], targets: {task_ids: [d]}, "
          "require_upstream: [{gate: x}]}\n"), "id"),
        ("platform:\n  approvals:\n    - {rule: '*'}\n", "rule"),
        ("platform:\n  approvals:\n    - {rule: 'b*.x'}\n", "rule"),
        ("platform:\n  rules: []\n  typo: 1\n", "typo"),
    ],
)
def test_invalid_platform_sections_are_rejected(snippet, field):
    with pytest.raises(PolicyError) as err:
        parse_policy(f"version: 1\nname: bad\n{snippet}".encode())
    assert field in str(err.value)


def test_check_dag_is_airflow_free():
    code = ("import sys, airflow_aisec.core.gates.platform as p\n"
            "assert not [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert check_dag(PlatformPolicy(), dag(t("x"))).findings == []


# ------------------------------------------------------------------------------------------------
# The Airflow cluster policy
# ------------------------------------------------------------------------------------------------
DAG_FILE = '''
import pendulum
from airflow.sdk import DAG, task
from airflow.providers.standard.operators.bash import BashOperator
from airflow_aisec.core.result import CheckOutcome
from airflow_aisec.operators.base import AisecGateOperator


class FakeDriftGate(AisecGateOperator):
    gate = "drift"

    def check(self, loaded, context):
        return CheckOutcome()


with DAG("{prefix}_good", schedule=None, start_date=pendulum.datetime(2025, 1, 1), tags=["model-deployment"]):
    @task
    def train():
        return 1

    @task
    def deploy_model(x):
        return x

    gate = FakeDriftGate(task_id="drift_gate", policy={policy!r})
    m = train()
    m >> gate
    gate >> deploy_model(m)

with DAG("{prefix}_missing_gate", schedule=None, tags=["model-deployment"]):
    BashOperator(task_id="publish", bash_command="true")

with DAG("{prefix}_mapped", schedule=None, tags=["model-deployment"]):
    BashOperator.partial(task_id="ship").expand(bash_command=["true", "true"])

with DAG("{prefix}_untagged", schedule=None):
    BashOperator(task_id="publish", bash_command="true")
'''


@pytest.fixture
def policy_file(tmp_path, monkeypatch):
    path = tmp_path / "platform.yaml"
    path.write_text(POLICY)
    monkeypatch.setenv("AIRFLOW__AISEC__PLATFORM_POLICY", str(path))
    return path


def parse(folder: Path, prefix: str, policy: Path | str) -> tuple[dict, dict]:
    from airflow.dag_processing.dagbag import DagBag

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}.py").write_text(DAG_FILE.format(prefix=prefix, policy=str(policy)))
    bag = DagBag(dag_folder=str(folder))
    return bag.dags, {Path(k).name: v for k, v in bag.import_errors.items()}


def test_entry_point_registers_the_hook():
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="airflow.policy")}
    assert eps.get("aisec") == "airflow_aisec.cluster_policy"
    from airflow import settings

    pm = settings.get_policy_plugin_manager()
    settings.load_policy_plugins(pm)
    names = [impl.plugin_name for impl in pm.hook.dag_policy.get_hookimpls()]
    assert "aisec" in names


def test_violating_dags_become_import_errors(tmp_path, policy_file):
    dags, errors = parse(tmp_path / "dags", "cp1", policy_file)
    # The compliant and the untagged DAG load; each violating one raises AirflowClusterPolicyViolation.
    assert "cp1_good" in dags and "cp1_untagged" in dags
    assert "cp1_missing_gate" not in dags and "cp1_mapped" not in dags
    msg = errors["cp1.py"]  # Airflow keeps the last error of a file
    assert "AirflowClusterPolicyViolation" in msg
    assert "[platform.deploy-needs-drift-gate]" in msg
    assert "platform-test" in msg


def test_message_names_rule_and_task(tmp_path, policy_file):
    from airflow.exceptions import AirflowClusterPolicyViolation
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG

    from airflow_aisec.cluster_policy import dag_policy

    with DAG("cp_direct", schedule=None, tags=["model-deployment"]) as d:
        BashOperator(task_id="publish", bash_command="true")
    with pytest.raises(AirflowClusterPolicyViolation) as err:
        dag_policy(d)
    text = str(err.value)
    assert "[platform.deploy-needs-drift-gate]" in text and "task 'publish'" in text and "'cp_direct'" in text


def test_mapped_operators_are_described_by_their_class(policy_file):
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG

    from airflow_aisec.cluster_policy import describe_dag

    with DAG("cp_mapped", schedule=None) as d:
        BashOperator.partial(task_id="ship").expand(bash_command=["true"])
    spec = describe_dag(d)
    assert "airflow.providers.standard.operators.bash.BashOperator" in spec.tasks["ship"].classes


def test_describe_dag_recognises_gates_and_waivers():
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    from airflow_aisec.cluster_policy import describe_dag
    from airflow_aisec.operators.approval import AisecWaiverApprovalOperator
    from airflow_aisec.operators.base import AisecGateOperator

    class G(AisecGateOperator):
        gate = "drift"

    with DAG("cp_describe", schedule=None, tags=["b", "a"]) as d:
        g = G(task_id="g")
        w = AisecWaiverApprovalOperator(task_id="w", gate_task_id="g")
        e = EmptyOperator(task_id="e")
        g >> w >> e
    spec = describe_dag(d)
    assert spec.tags == ("a", "b")
    assert spec.tasks["g"].gate == "drift" and spec.tasks["e"].gate is None
    assert spec.tasks["w"].approves == "g" and spec.tasks["w"].trigger_rule == "all_done"
    assert spec.tasks["e"].upstream == ("w",)
    assert "airflow_aisec.operators.base.AisecGateOperator" in spec.tasks["g"].classes
    json.dumps(spec.to_dict())  # plain data


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "policy file not found"),
        ("version: 1\nname: [oops\n", "malformed YAML"),
        ("version: 1\nname: x\ndrift: {}\n", "no 'platform' section"),
        ("version: 1\nname: x\nplatform:\n  rules: 3\n", "platform.rules"),
    ],
)
def test_unusable_policy_fails_closed_for_every_dag(tmp_path, monkeypatch, content, needle):
    path = tmp_path / "broken.yaml"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("AIRFLOW__AISEC__PLATFORM_POLICY", str(path))
    dags, errors = parse(tmp_path / "dags", "cp2", path)
    assert dags == {}  # not even the compliant or untagged DAGs load
    msg = errors["cp2.py"]
    assert "aisec platform policy ([aisec] platform_policy) is unusable" in msg and "fail closed" in msg
    assert needle in msg and str(path) in msg


def test_no_policy_configured_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("AIRFLOW__AISEC__PLATFORM_POLICY", raising=False)
    dags, errors = parse(tmp_path / "dags", "cp3", "unused.yaml")
    assert errors == {}
    assert {"cp3_good", "cp3_missing_gate", "cp3_mapped", "cp3_untagged"} <= set(dags)


def test_unconfigured_hook_is_cheap():
    """No policy configured: the hook reads one setting and loads nothing (no YAML, no pydantic models, no
    file). Work is counted, not timed (``bench/bench_cluster_policy.py`` reports the time): Python calls
    per DAG stay the same however many DAGs are checked, and within a budget far below any policy load."""
    code = textwrap.dedent("""
        import json, os, sys
        os.environ.pop("AIRFLOW__AISEC__PLATFORM_POLICY", None)
        from airflow.sdk import DAG
        from airflow_aisec.cluster_policy import dag_policy
        from tests.helpers.no_io import record_io
        with DAG("cheap", schedule=None) as d:
            pass
        dag_policy(d)  # first call: lazy imports of the settings lookup
        before = set(sys.modules)

        def work(n):
            calls = [0]

            def count(frame, event, arg):
                if event == "call":
                    calls[0] += 1

            with record_io() as io:
                sys.setprofile(count)
                try:
                    for _ in range(n):
                        dag_policy(d)
                finally:
                    sys.setprofile(None)
            return calls[0], io

        (small, small_io), (large, large_io) = work(20), work(200)
        new = sorted(m for m in set(sys.modules) - before if m.startswith("airflow_aisec") or m == "yaml")
        print(json.dumps({"calls": [small / 20, large / 200], "io": small_io + large_io, "new": new}))
    """)
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__AISEC__PLATFORM_POLICY"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["new"] == [] and got["io"] == [], got
    per_dag_small, per_dag_large = got["calls"]
    assert per_dag_large <= per_dag_small * 1.05 + 1, got  # constant work per DAG: no growth with the count
    assert per_dag_small <= 500, got  # one setting lookup (~70 calls); loading a policy costs >10,000


def test_configured_hook_reads_the_policy_once_however_many_dags(policy_file):
    """Configured: the file is read once, then each DAG costs one ``stat`` (the cache key) and no other I/O,
    for 10 DAGs as for 100 (counted, not timed)."""
    from airflow.sdk import DAG

    from airflow_aisec.cluster_policy import dag_policy
    from tests.helpers.no_io import record_io

    with DAG("cp_growth", schedule=None) as d:  # untagged: the rules do not apply, the hook returns
        pass
    policy = repr(str(policy_file))

    def accesses(n: int) -> tuple[int, int, int]:
        with record_io() as io:
            for _ in range(n):
                dag_policy(d)
        reads = sum(e.startswith("open(") and policy in e for e in io)
        stats = sum(e.startswith("os.stat(") and policy in e for e in io)
        return reads, stats, len(io)

    assert accesses(10)[0] == 1  # cold: loaded once
    assert accesses(10) == (0, 10, 10)
    assert accesses(100) == (0, 100, 100)


def test_edited_policy_takes_effect_without_restart(tmp_path, policy_file):
    from airflow_aisec.cluster_policy import load_platform_policy

    first = load_platform_policy(str(policy_file))
    assert load_platform_policy(str(policy_file)) is first  # cached
    policy_file.write_text(POLICY.replace("platform-test", "platform-edited") + "\n# grown\n")
    os.utime(policy_file, ns=(first_mtime := policy_file.stat().st_mtime_ns, first_mtime + 10_000_000))
    assert load_platform_policy(str(policy_file)).name == "platform-edited"
    policy_file.write_text("not: [valid\n")
    with pytest.raises(PolicyError):
        load_platform_policy(str(policy_file))


@pytest.mark.integration
def test_compliant_dag_runs_with_the_policy_active(run_dag, policy_file, tmp_path):
    """dag.test() parses the DAG through the same hook: a compliant DAG runs, the gate passes."""
    drift_policy = tmp_path / "gate.yaml"
    drift_policy.write_text(POLICY)
    source = DAG_FILE.format(prefix="cp4", policy=str(drift_policy))
    outcome = run_dag(source.split("with DAG(\"cp4_missing_gate\"")[0], "cp4_good", filename="cp4.py")
    assert outcome.state == "success"
    assert outcome.task_states == {"train": "success", "drift_gate": "success", "deploy_model": "success"}


@pytest.mark.integration
def test_strict_policy_rejects_deploy_without_verification(tmp_path, monkeypatch):
    """The shipped strict policy: model-deployment needs signature verification before deploying."""
    strict = REPO / "policies" / "strict.yaml"
    loaded_strict = load_policy(strict)
    monkeypatch.setenv("AIRFLOW__AISEC__PLATFORM_POLICY", str(strict))
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "strict_case.py").write_text(textwrap.dedent('''
        from airflow.sdk import DAG, task
        from airflow.providers.standard.operators.empty import EmptyOperator

        with DAG("strict_deploy_unverified", schedule=None, tags=["model-deployment"]):
            @task
            def train():
                return 1

            @task
            def deploy(x):
                return x

            deploy(train())

        with DAG("strict_pii_export", schedule=None, tags=["personal-data"]):
            @task
            def export_customers():
                return 1

            export_customers()

        with DAG("strict_plain", schedule=None, tags=["reporting"]):
            EmptyOperator(task_id="deploy")
    '''))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(folder))
    assert set(bag.dags) == {"strict_plain"}
    msg = next(iter(bag.import_errors.values()))
    assert "AirflowClusterPolicyViolation" in msg and loaded_strict.name in msg
    specs = {
        "strict_deploy_unverified": "platform.model-deployment-verified",
        "strict_pii_export": "platform.personal-data-pii-gate",
    }
    from airflow_aisec import cluster_policy

    monkeypatch.delenv("AIRFLOW__AISEC__PLATFORM_POLICY")  # the fixture's monkeypatch takes a new snapshot
    bag = DagBag(dag_folder=str(folder))
    for dag_id, rule in specs.items():
        got = [v.rule for v in evaluate_dag(loaded_strict, cluster_policy.describe_dag(bag.dags[dag_id]))]
        assert got == [rule], (dag_id, got)


@pytest.mark.parametrize("broken", [False, True])
def test_policy_is_warmed_when_airflow_loads_the_plugin(tmp_path, broken):
    """Configured: loaded once at `import airflow` (forked parsers start warm); broken: Airflow still starts."""
    path = tmp_path / "platform.yaml"
    path.write_text("version: 1\nname: [broken\n" if broken else POLICY)
    code = textwrap.dedent("""
        import sys
        import airflow  # loads the airflow.policy entry points
        from airflow_aisec import cluster_policy
        cached = cluster_policy._cache.get(sys.argv[1])
        print(type(cached[1]).__name__ if cached else "none")
    """)
    env = {**os.environ, "AIRFLOW__AISEC__PLATFORM_POLICY": str(path)}
    out = subprocess.run([sys.executable, "-c", code, str(path)], check=False, capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-1] == ("PolicyError" if broken else "LoadedPolicy")
