"""A SimpleAuthManager that can deny chosen users read access to chosen DAGs (tests only).

SimpleAuthManager grants by role (and, in multi-team mode, by the team of a DAG's bundle);
it cannot deny one user one DAG. The plugin asks the auth manager through Airflow's
``requires_access_dag`` and ``get_authorized_dag_ids``; this subclass answers those
questions per DAG so the tests can prove the plugin honours a per-DAG "no".
"""

from __future__ import annotations

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

#: username -> DAG ids that user may not access at all.
DENIED_DAGS: dict[str, set[str]] = {"restricted": {"aisec_ui_secret"}}


class RestrictedAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method, user, access_entity=None, details=None):
        if details is not None and details.id in DENIED_DAGS.get(user.username, set()):
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )
