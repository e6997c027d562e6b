"""Airflow cluster policy enforcing the ``platform`` rules of an aisec policy.

Registered through the ``airflow.policy`` entry point (``pyproject.toml``), so it is
active wherever the provider is installed: the dag-processor, the scheduler's and
workers' DAG parsing, ``dag.test()`` and ``airflow dags test``.

Configuration: the platform policy file is ``[aisec] platform_policy``
(:func:`airflow_aisec.settings.platform_policy`). It is a normal aisec policy that must have a
``platform`` section (:mod:`airflow_aisec.core.gates.platform`). The setting is taken as the
process had it at start (Airflow loads this module while it initialises, before any DAG file
runs), so a DAG file changing the environment or this module's state cannot switch it off for
the DAGs that follow.

* Not set or empty (the default): the policy does nothing. The cost per DAG is one
  configuration lookup, so installing the provider never changes how DAGs load.
* Set to a valid policy: each DAG is checked when it is parsed. A DAG that breaks an
  ``enforce``-level rule is rejected with :class:`AirflowClusterPolicyViolation`; Airflow
  records an import error naming the rule and the task, and the DAG does not load (other
  DAGs of the same file still do). ``warn``-level violations are logged only.
* Set, but the file is missing, unreadable, invalid, or has no ``platform`` section: fail
  closed. Every DAG is rejected with an import error saying which file is wrong and why,
  until the file is fixed; a broken platform policy never silently switches the rules off.

The parsed policy is cached per process, keyed by path, size and modification time,
so an edited file takes effect on the next parse without a restart. It is loaded once when
Airflow loads the policy plugins, so the dag-processor's forked parsers start with it warm.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from airflow.policies import hookimpl

from airflow_aisec import settings

if TYPE_CHECKING:
    from airflow_aisec.core.gates.platform import DagSpec, TaskSpec
    from airflow_aisec.core.policy import LoadedPolicy

log = logging.getLogger(__name__)

#: ``[aisec]`` option naming the platform policy file.
CONFIG_OPTION = "platform_policy"

_lock = threading.Lock()
_cache: dict[str, tuple[tuple[int, int], Any]] = {}


def configured_policy_path() -> str:
    """The configured platform policy path, or ``""`` when enforcement is off (the process's snapshot of
    the settings, taken before any DAG file ran: see :mod:`airflow_aisec.settings`)."""
    return settings.platform_policy()


def load_platform_policy(path: str) -> LoadedPolicy:
    """Load and validate the platform policy, cached by (size, mtime).

    Raises:
        PolicyError: missing, unreadable, invalid, or without a ``platform`` section.
    """
    from airflow_aisec.core.policy import load_policy
    from airflow_aisec.exceptions import PolicyError

    try:
        st = os.stat(path)
        key: tuple[int, int] | None = (st.st_size, st.st_mtime_ns)
    except OSError:
        key = None  # let load_policy produce the precise error
    with _lock:
        cached = _cache.get(path)
    if key is not None and cached is not None and cached[0] == key:
        value = cached[1]
    else:
        try:
            value = load_policy(path)
            value.section("platform")
        except PolicyError as exc:
            value = exc
        if key is not None:
            with _lock:
                _cache[path] = (key, value)
    if isinstance(value, PolicyError):
        raise value
    return value


# --------------------------------------------------------------------------------------------
# DAG -> neutral description
# --------------------------------------------------------------------------------------------
def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _operator_class(task: Any) -> type:
    cls = getattr(task, "operator_class", None)  # MappedOperator keeps the real class here
    return cls if isinstance(cls, type) else type(task)


def describe_task(task: Any) -> TaskSpec:
    """Neutral description of one Airflow task (operator or mapped operator)."""
    from airflow_aisec.core.gates.platform import TaskSpec
    from airflow_aisec.pod_specs import pod_specs

    cls = _operator_class(task)
    classes = tuple(_qualname(c) for c in cls.__mro__ if c is not object)
    gate = getattr(cls, "gate", None)
    is_gate = isinstance(gate, str) and bool(gate) and hasattr(cls, "run_gate")
    approves = None
    if getattr(cls, "aisec_approval_route", False):
        approves = getattr(task, "gate_task_id", None)
        if approves is None:
            approves = (getattr(task, "partial_kwargs", None) or {}).get("gate_task_id")
        approves = str(approves) if approves is not None else ""
    trigger_rule = getattr(task, "trigger_rule", "all_success")
    return TaskSpec(
        task_id=task.task_id,
        classes=classes,
        gate=gate if is_gate else None,
        upstream=tuple(sorted(task.upstream_task_ids)),
        trigger_rule=str(getattr(trigger_rule, "value", trigger_rule)),
        approves=approves,
        pods=pod_specs(task, cls),
    )


def describe_dag(dag: Any) -> DagSpec:
    """Neutral description of an Airflow DAG, as :mod:`airflow_aisec.core.gates.platform` evaluates it."""
    from airflow_aisec.core.gates.platform import DagSpec

    return DagSpec.build(
        dag.dag_id,
        (describe_task(t) for t in dag.tasks),
        tags=[str(t) for t in (dag.tags or ())],
        fileloc=getattr(dag, "fileloc", None),
    )


# --------------------------------------------------------------------------------------------
# The hook
# --------------------------------------------------------------------------------------------
def check(dag: Any, path: str, *, load: Any = None, describe: Any = None) -> None:
    """Check one DAG against the platform policy at ``path``.

    Args:
        dag: The DAG.
        path: The platform policy file.
        load: Loads the policy (default :func:`load_platform_policy`).
        describe: Describes the DAG (default :func:`describe_dag`).

    Raises:
        AirflowClusterPolicyViolation: a blocking violation, or an unusable policy file.
    """
    from airflow.exceptions import AirflowClusterPolicyViolation

    from airflow_aisec.core.gates.platform import evaluate_dag, format_violations
    from airflow_aisec.exceptions import PolicyError

    try:
        loaded = (load or load_platform_policy)(path)
    except PolicyError as exc:
        raise AirflowClusterPolicyViolation(
            f"aisec platform policy ([aisec] {CONFIG_OPTION}) is unusable, so no DAG is loaded until it is "
            f"fixed (fail closed): {exc}"
        ) from None
    try:
        violations = evaluate_dag(loaded, (describe or describe_dag)(dag))
    except Exception as exc:
        log.exception("aisec platform policy check failed for DAG %s", getattr(dag, "dag_id", "?"))
        raise AirflowClusterPolicyViolation(
            f"aisec platform policy check failed with {type(exc).__name__}; DAG not loaded (fail closed)"
        ) from None
    for v in violations:
        if not v.blocking:
            (log.warning if v.enforcement.value == "warn" and not v.waived else log.info)(
                "aisec platform policy '%s': %s", loaded.name, v.format()
            )
    if any(v.blocking for v in violations):
        raise AirflowClusterPolicyViolation(format_violations(violations, policy_name=loaded.name))


def _prewarm() -> None:
    """Load a configured policy when Airflow loads this plugin (once per process).

    The dag-processor parses each file in a process forked from its manager: loading the policy
    (and the pydantic models of every section, ~0.15 s) in the manager makes it free for each
    parse. Errors are left for :func:`dag_policy` to report on every DAG (fail closed there).
    """
    try:
        path = configured_policy_path()
        if path:
            load_platform_policy(path)
    except Exception:  # noqa: BLE001, S110 - reported by dag_policy, per DAG
        pass


def _make_dag_policy() -> Any:
    # The hook keeps its own references, taken when Airflow loads this module (before any DAG file
    # runs): rebinding this module's or the settings module's names from a DAG file changes nothing.
    platform_policy = settings.platform_policy
    run_check, load, describe = check, load_platform_policy, describe_dag

    def dag_policy(dag: Any) -> None:
        """Reject DAGs that break the configured platform rules (no-op when none are configured).

        There is no switch to turn it off from inside a process: the policy path is the process's
        snapshot of ``[aisec] platform_policy`` (taken before any DAG file ran), and ``aisec lint``
        parses DAGs in a child process started without it (:mod:`airflow_aisec.cli.commands.lint`).
        """
        path = platform_policy()
        if path:
            run_check(dag, path, load=load, describe=describe)

    return dag_policy


dag_policy = hookimpl(_make_dag_policy())
_prewarm()
