"""The pods a task runs in, as plain dicts: what the ``platform.pod_*`` rules are judged on.

The Airflow-side half of the pod rules (the core, :mod:`airflow_aisec.core.gates.platform`, never
imports Airflow or kubernetes). Two sources:

* a ``KubernetesPodOperator`` (or subclass): its pod template (``pod_template_dict`` or
  ``pod_template_file``), ``full_pod_spec``, and the arguments that override them (``image``,
  ``security_context``, ``container_security_context``, ``container_resources``, ``volumes``,
  ``init_containers``, ``hostnetwork``), merged the way the operator builds its pod (arguments win,
  the base container is the first one);
* ``executor_config["pod_override"]``, a ``kubernetes.client.V1Pod`` or a plain dict.

``V1*`` objects become Kubernetes API dicts (camelCase) through the kubernetes client's own
serializer, imported only when the task already holds such an object. Plain dicts are kept as they
are (camelCase or snake_case: the rules match keys either way). Nothing here talks to a cluster.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from airflow_aisec.core.io.expansion import within_values

#: Qualified name of the operator whose arguments describe a pod.
KPO_CLASS = "airflow.providers.cncf.kubernetes.operators.pod.KubernetesPodOperator"
#: Source labels of the pod specs (shown in findings).
SOURCE_OPERATOR = "KubernetesPodOperator"
SOURCE_OVERRIDE = "executor_config.pod_override"
_MAX_TEMPLATE_BYTES = 1024 * 1024


@functools.lru_cache(maxsize=1)
def _serializer() -> Any:
    from kubernetes.client import ApiClient

    return ApiClient()


def _norm(key: Any) -> str:
    return str(key).replace("_", "").lower()


def to_plain(value: Any) -> Any:
    """A kubernetes model (anything with ``openapi_types``) as an API dict; mappings and lists recursively."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "openapi_types") and hasattr(value, "attribute_map"):
        return _serializer().sanitize_for_serialization(value)
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return str(value)


def merge(base: Any, top: Any) -> Any:
    """``top`` over ``base``: mappings key by key (keys matched whatever their case / underscores),
    ``containers`` element by element, anything else replaced unless ``top`` is None or empty."""
    if top is None or top == {} or top == []:
        return base
    if isinstance(base, Mapping) and isinstance(top, Mapping):
        out = dict(base)
        names = {_norm(k): k for k in out}
        for key, value in top.items():
            existing = names.get(_norm(key))
            if existing is None:
                out[key] = value
                names[_norm(key)] = key
            elif _norm(key) == "containers" and isinstance(out[existing], list) and isinstance(value, list):
                old = list(out[existing])
                out[existing] = [merge(old[i] if i < len(old) else None, c) for i, c in enumerate(value)]
                out[existing] += old[len(value):]
            else:
                out[existing] = merge(out[existing], value)
        return out
    return top


#: Values a pod template may hold once its YAML aliases (or shared Python objects) are followed: the
#: pod rules and the DAG description walk them all (a 1 kB template of nested aliases holds 10^8).
MAX_POD_VALUES = 100_000


def _read_template(path: str) -> dict[str, Any] | None:
    import yaml

    try:
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_TEMPLATE_BYTES + 1)
        if len(raw) > _MAX_TEMPLATE_BYTES:
            return None
        doc = yaml.safe_load(raw)
    except (OSError, yaml.YAMLError, RecursionError):
        return None
    return doc if isinstance(doc, dict) and within_values(doc, MAX_POD_VALUES) else None


def _attr(task: Any, name: str) -> Any:
    """An operator argument; for a mapped task, its partial argument (expanded ones are unknown here)."""
    partial = getattr(task, "partial_kwargs", None)
    if isinstance(partial, Mapping):
        return partial.get(name)
    return getattr(task, name, None)


def operator_pod(task: Any) -> dict[str, Any] | None:
    """The pod a KubernetesPodOperator would create, as a plain dict (None: its template is unreadable)."""
    base: Any = {}
    template_dict = _attr(task, "pod_template_dict")
    template_file = _attr(task, "pod_template_file")
    if template_dict:
        if not within_values(template_dict, MAX_POD_VALUES):
            return None
        base = to_plain(template_dict)
    elif template_file:
        base = _read_template(str(template_file))
        if base is None:
            return None
    base = merge(base, to_plain(_attr(task, "full_pod_spec")))
    container = {
        "name": _attr(task, "base_container_name") or "base",
        "image": _attr(task, "image"),
        "securityContext": to_plain(_attr(task, "container_security_context")),
        "resources": to_plain(_attr(task, "container_resources")),
    }
    spec = {
        "hostNetwork": True if _attr(task, "hostnetwork") else None,
        "securityContext": to_plain(_attr(task, "security_context")),
        "volumes": to_plain(list(_attr(task, "volumes") or [])),
        "initContainers": to_plain(list(_attr(task, "init_containers") or [])),
        "containers": [{k: v for k, v in container.items() if v not in (None, {}, [])}],
    }
    return merge(base, {"spec": {k: v for k, v in spec.items() if v not in (None, {}, [])}})


@functools.lru_cache(maxsize=4096)
def _is_kpo(cls: type) -> bool:
    return any(f"{c.__module__}.{c.__qualname__}" == KPO_CLASS for c in cls.__mro__)


def pod_specs(task: Any, cls: type) -> tuple[tuple[str, dict[str, Any] | None], ...]:
    """``(source, pod dict or None when unreadable)`` for each pod the task describes; usually none."""
    out: list[tuple[str, dict[str, Any] | None]] = []
    if _is_kpo(cls):
        out.append((SOURCE_OPERATOR, operator_pod(task)))
    config = _attr(task, "executor_config")
    override = config.get("pod_override") if isinstance(config, Mapping) else None
    if override is not None:
        plain = to_plain(override)
        out.append((SOURCE_OVERRIDE, plain if isinstance(plain, dict) else None))
    return tuple(out)
