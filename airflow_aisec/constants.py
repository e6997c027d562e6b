"""Names shared by the core, the operators and the UI plugin (import-cheap on purpose)."""

#: XCom key under which gate operators push their result (the GateResult JSON).
RESULT_XCOM_KEY = "aisec_result"
#: XCom key holding the evidence-store reference of that result.
EVIDENCE_XCOM_KEY = "aisec_evidence"
