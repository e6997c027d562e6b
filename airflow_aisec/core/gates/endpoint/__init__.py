"""The ``endpoint`` gate: probe a model serving endpoint (TLS, authentication, OpenAPI security, exposed
paths, CORS, rate and body limits) before it is promoted.

:func:`check_endpoint` is the entry point (:mod:`.check`). Private modules: ``_client`` (the bounded,
host-pinned HTTP prober), ``_tls`` (handshakes with :mod:`ssl`), ``_openapi`` (secured operations of a
published document), ``_probes`` (one function per HTTP check). httpx is imported only when probing.
"""

from airflow_aisec.core.gates.endpoint.check import GATE, RULES, check_endpoint, policy_base_dir

__all__ = ["GATE", "RULES", "check_endpoint", "policy_base_dir"]
