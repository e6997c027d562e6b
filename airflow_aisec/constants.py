"""Names shared by the core, the operators and the UI plugin (import-cheap on purpose)."""

#: XCom key under which gate operators push their result (the GateResult JSON).
RESULT_XCOM_KEY = "aisec_result"
#: XCom key holding the evidence-store reference of that result.
EVIDENCE_XCOM_KEY = "aisec_evidence"
#: XCom key under which the secrets gate pushes its wrapping-token handles (read by ``task_secrets``).
SECRET_HANDLES_XCOM_KEY = "aisec_secret_handles"
