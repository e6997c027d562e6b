"""A SimpleAuthManager with per-DAG rights (tests only): users who may not see a DAG at all, and users
who may change (write XCom, trigger, clear) only some DAGs while reading the others.

SimpleAuthManager grants by role only; the plugin and the REST API ask the auth manager per DAG
(``requires_access_dag`` and ``get_authorized_dag_ids``), so this subclass answers per DAG.
"""

from __future__ import annotations

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

#: username -> DAG ids that user may not access at all.
DENIED_DAGS: dict[str, set[str]] = {"writer": {"aisec_sec_victim"}}
#: username -> the only DAG ids that user may change (any method but GET).
WRITABLE_DAGS: dict[str, set[str]] = {"writer": {"aisec_sec_attacker"}}


class SecurityAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method, user, access_entity=None, details=None):
        dag_id = details.id if details is not None else None
        if dag_id in DENIED_DAGS.get(user.username, set()):
            return False
        writable = WRITABLE_DAGS.get(user.username)
        if method != "GET" and writable is not None and dag_id not in writable:
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
