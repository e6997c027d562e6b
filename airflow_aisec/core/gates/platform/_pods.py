"""Isolation rules for the pods tasks run in (``platform.pod_*``), judged on plain Kubernetes API dicts.

The pods come from :attr:`TaskSpec.pods` (built on the Airflow side by :mod:`airflow_aisec.pod_specs`).
Keys are matched whatever their case and underscores, so a ``V1Pod`` serialized by the kubernetes
client (``securityContext``), its ``to_dict()`` (``security_context``) and a hand-written dict are
judged the same way. Every container and init container counts. A container without an image (an
executor pod override that only patches resources) is judged on everything but its image.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from airflow_aisec.core.gates.platform._dagspec import DagSpec, TaskSpec
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.policy.sections.platform import RULE_PREFIX, PodRules

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_MAX_LISTED = 10

#: Rule id (without ``platform.``) -> what it demands, for messages.
POD_RULES = {
    "pod_spec_unreadable": "a pod spec the rules can read",
    "pod_run_as_root": "runAsNonRoot: true and no runAsUser 0",
    "pod_privileged": "no privileged container and no allowPrivilegeEscalation: true",
    "pod_host_network": "no hostNetwork",
    "pod_host_pid": "no hostPID",
    "pod_host_ipc": "no hostIPC",
    "pod_host_path": "no hostPath volume",
    "pod_writable_root_fs": "readOnlyRootFilesystem: true",
    "pod_resource_limits": "resource limits",
    "pod_image_digest": "images pinned by @sha256 digest",
    "pod_image_registry": "images from an allowed registry",
}


def _norm(key: Any) -> str:
    return str(key).replace("_", "").replace("-", "").lower()


def get(obj: Any, name: str) -> Any:
    """``obj[name]`` matching keys whatever their case and underscores (None when absent)."""
    if not isinstance(obj, Mapping):
        return None
    if name in obj:
        return obj[name]
    want = _norm(name)
    for key, value in obj.items():
        if _norm(key) == want:
            return value
    return None


def _seq(value: Any) -> list[Any]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, (list, tuple)) else []


def _spec(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = get(pod, "spec")
    if isinstance(spec, Mapping):
        return spec
    return pod if get(pod, "containers") is not None else {}


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for kind in ("containers", "initContainers", "ephemeralContainers"):
        for i, container in enumerate(_seq(get(spec, kind))):
            name = get(container, "name")
            yield (str(name) if name else f"{kind}[{i}]")[:100], container


def image_registry(image: str) -> tuple[str, str]:
    """``(registry host, repository path)`` of an image reference (``docker.io`` when unqualified)."""
    ref = image.split("@", 1)[0]
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = "docker.io", ref
    path = path.rsplit(":", 1)[0] if ":" in path.rsplit("/", 1)[-1] else path
    return registry.lower(), path


def registry_allowed(image: str, allowed: Iterable[str]) -> bool:
    registry, path = image_registry(image)
    for glob in allowed:
        target = f"{registry}/{path}" if "/" in glob else registry
        if fnmatch.fnmatchcase(target, glob.lower() if "/" not in glob else glob):
            return True
    return False


def judge_pod(rules: PodRules, pod: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """``{rule suffix: [what broke it, ...]}`` for one pod (empty when it complies)."""
    hits: dict[str, list[str]] = {}

    def add(rule: str, what: str) -> None:
        hits.setdefault(rule, []).append(what)

    if pod is None:
        add("pod_spec_unreadable", "the pod spec (template file missing, too large or not YAML, or YAML aliases "
                                   "expanding it past 100,000 values)")
        return hits
    spec = _spec(pod)
    pod_sc = get(spec, "securityContext") or {}
    if rules.forbid_host_namespaces:
        for key, rule in (("hostNetwork", "pod_host_network"), ("hostPID", "pod_host_pid"),
                          ("hostIPC", "pod_host_ipc")):
            if get(spec, key) is True:
                add(rule, key)
    if rules.forbid_host_path:
        for i, vol in enumerate(_seq(get(spec, "volumes"))):
            if get(vol, "hostPath"):
                add("pod_host_path", f"volume {str(get(vol, 'name') or i)[:100]}")
    for name, c in _containers(spec):
        sc = get(c, "securityContext") or {}
        if rules.run_as_non_root:
            non_root = get(sc, "runAsNonRoot")
            non_root = get(pod_sc, "runAsNonRoot") if non_root is None else non_root
            user = get(sc, "runAsUser")
            user = get(pod_sc, "runAsUser") if user is None else user
            if non_root is not True or user == 0:
                add("pod_run_as_root", name)
        if rules.forbid_privileged and (get(sc, "privileged") is True or get(sc, "allowPrivilegeEscalation") is True):
            add("pod_privileged", name)
        if rules.read_only_root_filesystem and get(sc, "readOnlyRootFilesystem") is not True:
            add("pod_writable_root_fs", name)
        if rules.require_limits:
            limits = get(get(c, "resources"), "limits") or {}
            missing = [r for r in rules.require_limits if not (isinstance(limits, Mapping) and limits.get(r))]
            if missing:
                add("pod_resource_limits", f"{name} (no {'/'.join(missing)} limit)")
        image = get(c, "image")
        if image is None:
            continue
        image = str(image)[:300]
        if rules.require_image_digest and not _DIGEST.search(image):
            add("pod_image_digest", f"{name} ({image})")
        if rules.allowed_registries is not None and not registry_allowed(image, rules.allowed_registries):
            add("pod_image_registry", f"{name} ({image_registry(image)[0]})")
    return hits


def _applies(rules: PodRules, dag: DagSpec) -> bool:
    if "*" in rules.dag_tags:
        return True
    return any(fnmatch.fnmatchcase(tag, glob) for tag in dag.tags for glob in rules.dag_tags)


def pod_violations(rules: PodRules | None, dag: DagSpec) -> list[tuple[str, str, str, Severity]]:
    """``(rule id, task id, message, severity)`` for each rule a task's pods break, in a stable order."""
    if rules is None or not _applies(rules, dag):
        return []
    out = []
    for task in dag.tasks.values():
        out += _task_violations(rules, dag, task)
    return out


def _task_violations(rules: PodRules, dag: DagSpec, task: TaskSpec) -> list[tuple[str, str, str, Severity]]:
    by_rule: dict[str, list[str]] = {}
    for source, pod in task.pods:
        for rule, whats in judge_pod(rules, pod).items():
            by_rule.setdefault(rule, []).extend(f"{source}: {w}" for w in whats)
    out = []
    for rule, demand in POD_RULES.items():
        whats = by_rule.get(rule)
        if not whats:
            continue
        more = f"; and {len(whats) - _MAX_LISTED} more" if len(whats) > _MAX_LISTED else ""
        shown = "; ".join(whats[:_MAX_LISTED]) + more
        message = f"DAG '{dag.dag_id}' task '{task.task_id}': pod must have {demand}: {shown}"
        out.append((RULE_PREFIX + rule, task.task_id, message, rules.severity))
    return out
