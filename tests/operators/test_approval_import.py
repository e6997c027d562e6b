"""The waiver operator's module is cheap to import: the standard provider's HITL module (the
operator's base class) is imported when the class is first used, not when a DAG file imports
any airflow-aisec operator module."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent("""
    import sys
    import airflow_aisec.operators.approval as approval
    HITL = "airflow.providers.standard.operators.hitl"
    assert HITL not in sys.modules, "imported at module import"
    cls = approval.AisecWaiverApprovalOperator
    assert HITL in sys.modules
    from airflow.providers.standard.operators.hitl import ApprovalOperator
    assert issubclass(cls, ApprovalOperator)
    assert approval.AisecWaiverApprovalOperator is cls  # built once
    assert (cls.__module__, cls.__qualname__) == ("airflow_aisec.operators.approval", "AisecWaiverApprovalOperator")
    assert "AisecWaiverApprovalOperator" in dir(approval)
    op = cls(task_id="w", gate_task_id="g")
    assert op.trigger_rule == "all_done" and op.fail_on_reject
    print("ok")
""")


def test_hitl_module_is_imported_only_when_the_waiver_operator_is_used():
    out = subprocess.run([sys.executable, "-c", PROBE], check=False, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
