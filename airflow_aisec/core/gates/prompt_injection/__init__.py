"""The prompt_injection gate: prompt-injection payloads in training, RAG and prompt data.

Public API (the policy section is :mod:`airflow_aisec.core.policy.sections.prompt_injection`):

* :func:`check_prompt_injection` (``section, data, *, columns, s3_client, engine``): the gate's check.

Modules: ``check`` (entry point), ``_sources`` (streaming tables, JSONL, documents, directories,
S3), ``_detect`` (the detector and the RE2 pre-filter), ``_tally`` (counts and findings),
``_phrases`` (override / role / persona / extraction phrasing in EN, ES, FR, DE), ``_markers``
(chat-template markers, tool-call shapes), ``_unicode`` (normalisation, hidden characters,
homoglyphs), ``_decode`` (base64 / hex / rot13), ``_html`` (hidden HTML text), ``_exfil``
(exfiltration URLs), ``_pattern`` (one template, two regex engines). pyarrow is imported inside
functions.
"""

from airflow_aisec.core.gates.prompt_injection.check import check_prompt_injection

__all__ = ["check_prompt_injection"]
