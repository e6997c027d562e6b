"""DAG sources and planted values shared by the UI plugin tests (and the browser test's Airflow)."""

from __future__ import annotations

import textwrap

#: Planted in a column name and a message: must never reach a page unescaped.
XSS_PAYLOAD = '<script>alert("aisec-xss")</script>'
#: Only in the restricted DAG's results: a user without access must never see it.
SECRET_MARKER = "SECRET-DAG-MARKER-7f3a"

MIXED_DAG = "aisec_ui_mixed"
SECRET_DAG = "aisec_ui_secret"
#: Verdict per gate of a MIXED_DAG run in the run tab (waived passes; a gate after a failed one is pending).
MIXED_VERDICTS = {
    "gate_fail": "fail",
    "gate_warn": "warn",
    "gate_pass": "pass",
    "gate_waived": "pass",
    "gate_after_fail": "pending",
}


def pick_gate() -> str:
    """A policy section that validates as ``{}`` (sections get required fields as gates land)."""
    from pydantic import ValidationError

    from airflow_aisec.core.policy import Policy

    for name in ("drift", "bias", "platform", "model_scan", "source", "signing", "pii", "secrets"):
        annotation = Policy.model_fields[name].annotation
        model = next(a for a in annotation.__args__ if a is not type(None))
        try:
            model.model_validate({})
        except ValidationError:
            continue
        return name
    raise AssertionError("no policy section accepts an empty mapping")


GATE_OPERATOR_SOURCE = '''
from airflow_aisec.core.result import CheckOutcome, Finding, ReportRef
from airflow_aisec.operators.base import AisecGateOperator


class UiTestGate(AisecGateOperator):
    """Test gate: reports the findings it was given (through the real gate base class)."""

    gate = "{gate}"

    def __init__(self, *, findings=(), metrics=None, reports=(), **kwargs):
        super().__init__(**kwargs)
        self.findings = list(findings)
        self.metrics = dict(metrics or {{}})
        self.reports = list(reports)

    def check(self, loaded, context):
        return CheckOutcome(
            findings=[Finding(**f) for f in self.findings],
            metrics=self.metrics,
            reports=[ReportRef(**r) for r in self.reports],
        )
'''


def policy_text(gate: str, name: str = "ui-test") -> str:
    return textwrap.dedent(
        f"""\
        version: 1
        name: {name}
        enforcement: enforce
        rules:
          {gate}.minor_shift: warn
        waivers:
          - rule: {gate}.known_issue
            scope: {{dag_id: "aisec_ui_*", task_id: "*"}}
            reason: "JIRA-42: accepted until the retrain"
            approved_by: security@example.com
            expires: 2099-12-31
        {gate}: {{}}
        """
    )


def mixed_dag_source(gate: str, policy: str, report: str, report_root: str) -> str:
    fail_findings = [
        {
            "rule": f"{gate}.psi_exceeded",
            "severity": "critical",
            "message": f"PSI above threshold in column {XSS_PAYLOAD}",
            "count": 3,
            "location": {"column": XSS_PAYLOAD},
        },
        {
            "rule": f"{gate}.minor_shift",
            "severity": "low",
            "message": "small mean shift in column age",
            "count": 1,
        },
    ]
    return GATE_OPERATOR_SOURCE.format(gate=gate) + textwrap.dedent(
        f"""
        import datetime
        from airflow.sdk import DAG

        with DAG("{MIXED_DAG}", schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False):
            failing = UiTestGate(
                task_id="gate_fail",
                policy={policy!r},
                findings={fail_findings!r},
                metrics={{"psi_max": 0.41, "columns_checked": 12}},
                reports=[{{"name": "drift report", "uri": {report!r}}},
                         {{"name": "external dashboard", "uri": "https://reports.example.com/run/1"}},
                         {{"name": "evil", "uri": "javascript:alert(1)"}},
                         {{"name": "passwd", "uri": "/etc/passwd"}},
                         {{"name": "traversal", "uri": {report_root + "/../../../../../etc/passwd"!r}}}],
            )
            UiTestGate(task_id="gate_pass", policy={policy!r}, metrics={{"psi_max": 0.02}})
            UiTestGate(
                task_id="gate_warn",
                policy={policy!r},
                findings=[{{"rule": "{gate}.minor_shift", "severity": "low", "message": "small shift", "count": 2}}],
            )
            UiTestGate(
                task_id="gate_waived",
                policy={policy!r},
                findings=[{{"rule": "{gate}.known_issue", "severity": "high", "message": "known issue", "count": 1}}],
            )
            after = UiTestGate(task_id="gate_after_fail", policy={policy!r})
            failing >> after
        """
    )


def secret_dag_source(gate: str, policy: str) -> str:
    return GATE_OPERATOR_SOURCE.format(gate=gate) + textwrap.dedent(
        f"""
        import datetime
        from airflow.sdk import DAG

        with DAG("{SECRET_DAG}", schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False):
            UiTestGate(
                task_id="gate_secret",
                policy={policy!r},
                findings=[{{"rule": "{gate}.psi_exceeded", "message": "{SECRET_MARKER} in column x", "count": 1}}],
            )
        """
    )


# --- posture view: two gate types, a long finding, structured metrics -----------------------------
POSTURE_DAG = "aisec_ui_posture"
#: The tail of a finding message longer than any table cell: the overview must show it whole.
LONG_TAIL = "END-OF-LONG-FINDING-MESSAGE"
#: Structured metrics: a mapping (bars), a table (per group), a series (sparkline), something else (JSON).
POSTURE_METRICS = {
    "psi_max": 0.07,
    "psi_per_column": {"age": 0.07, "income": 0.02, "zip": 0.001},
    "per_group": {"group_a": {"selection_rate": 0.52, "n": 400}, "group_b": {"selection_rate": 0.47, "n": 380}},
    "psi_history": [0.01, 0.03, 0.02, 0.07],
    "odd_shape": {"nested": [{"deep": [1, 2]}]},
}


def second_gate(first: str) -> str:
    """Another policy section that validates as ``{}`` (the matrix needs two gate types)."""
    from pydantic import ValidationError

    from airflow_aisec.core.policy import Policy

    for name in ("model_scan", "signing", "bias", "drift", "pii", "storage", "prompt_injection"):
        if name == first:
            continue
        annotation = Policy.model_fields[name].annotation
        model = next(a for a in annotation.__args__ if a is not type(None))
        try:
            model.model_validate({})
        except ValidationError:
            continue
        return name
    raise AssertionError("no second policy section accepts an empty mapping")


def posture_policy_text(gate: str, other: str) -> str:
    return policy_text(gate) + f"{other}: {{}}\n"


def posture_dag_source(gate: str, other: str, policy: str) -> str:
    long_message = "distribution shift in column income " + "and more context " * 20 + LONG_TAIL
    findings = [
        {"rule": f"{other}.unsafe_file", "severity": "critical", "message": long_message, "count": 2},
        {"rule": f"{other}.second_issue", "severity": "high", "message": "second issue in model.bin", "count": 1},
        {"rule": f"{other}.third_issue", "severity": "low", "message": "third issue in config.json", "count": 1},
    ]
    return GATE_OPERATOR_SOURCE.format(gate=gate) + textwrap.dedent(
        f"""
        import datetime
        from airflow.sdk import DAG


        class UiOtherGate(UiTestGate):
            gate = "{other}"


        with DAG("{POSTURE_DAG}", schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False):
            UiTestGate(task_id="metrics_gate", policy={policy!r}, metrics={POSTURE_METRICS!r})
            UiOtherGate(task_id="scan_gate", policy={policy!r}, findings={findings!r})
        """
    )
