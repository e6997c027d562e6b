"""The llm_redteam gate: a bounded prompt-injection probe suite against a candidate model before deploy.

Public API (the policy section is :mod:`airflow_aisec.core.policy.sections.llm_redteam`):

* :func:`check_llm_redteam` (``section, endpoint, *, model, token``): the gate's check;
* :data:`RULE_SUCCESS`, :data:`RULE_LEAK`, :data:`RULE_INCOMPLETE`: its rule ids.

Modules: ``check`` (entry point, bounded concurrent run, findings), ``_probes`` (the suite and the
canary), ``_leak`` (canary / marker / token detection in a reply), ``_client`` (OpenAI-compatible
HTTP endpoint via httpx, or an in-process callable). httpx is imported when a request is made.
"""

from airflow_aisec.core.gates.llm_redteam.check import (
    RULE_INCOMPLETE,
    RULE_LEAK,
    RULE_SUCCESS,
    check_llm_redteam,
)

__all__ = ["RULE_INCOMPLETE", "RULE_LEAK", "RULE_SUCCESS", "check_llm_redteam"]
