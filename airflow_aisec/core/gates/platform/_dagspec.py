"""The Airflow-free description of a DAG that the platform rules are evaluated on.

The cluster policy and ``aisec lint`` build it from real Airflow DAGs
(:func:`airflow_aisec.cluster_policy.describe_dag`); tests and benchmarks build it directly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TaskSpec:
    """What the rules need to know about one task.

    Attributes:
        task_id: The task id.
        classes: Qualified names of the operator class and its base classes, most specific first.
        gate: The operator's gate name when it is an aisec gate, else None.
        upstream: Ids of the direct upstream tasks.
        trigger_rule: The task's trigger rule.
        approves: For a human-approval waiver task: the task id of the gate it approves.
        pods: ``(source, pod)`` for each pod the task runs in (a KubernetesPodOperator's pod, an
            ``executor_config`` pod override), as plain Kubernetes API dicts; ``pod`` is None when it
            could not be read (e.g. an unreadable pod template file). Judged by the ``platform.pod_*``
            rules.
    """

    task_id: str
    classes: tuple[str, ...] = ()
    gate: str | None = None
    upstream: tuple[str, ...] = ()
    trigger_rule: str = "all_success"
    approves: str | None = None
    pods: tuple[tuple[str, Mapping[str, Any] | None], ...] = field(default=(), hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "classes": list(self.classes),
            "gate": self.gate,
            "upstream": list(self.upstream),
            "trigger_rule": self.trigger_rule,
            "approves": self.approves,
            "pods": [{"source": src, "pod": pod} for src, pod in self.pods],
        }


@dataclass(frozen=True)
class DagSpec:
    """A DAG as the rules see it: id, tags, and tasks with their upstream edges."""

    dag_id: str
    tags: tuple[str, ...] = ()
    tasks: Mapping[str, TaskSpec] = field(default_factory=dict)
    fileloc: str | None = None

    @classmethod
    def build(
        cls, dag_id: str, tasks: Iterable[TaskSpec], *, tags: Iterable[str] = (), fileloc: str | None = None
    ) -> DagSpec:
        return cls(dag_id=dag_id, tags=tuple(sorted(tags)), tasks={t.task_id: t for t in tasks},
                   fileloc=fileloc)

    def downstream(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {tid: [] for tid in self.tasks}
        for task in self.tasks.values():
            for up in task.upstream:
                out.setdefault(up, []).append(task.task_id)
        return out

    def ancestors(self, task_id: str) -> set[str]:
        seen: set[str] = set()
        queue = deque(self.tasks[task_id].upstream)
        while queue:
            tid = queue.popleft()
            if tid in seen or tid not in self.tasks:
                continue
            seen.add(tid)
            queue.extend(self.tasks[tid].upstream)
        return seen

    def to_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "tags": list(self.tags),
            "fileloc": self.fileloc,
            "tasks": [t.to_dict() for t in self.tasks.values()],
        }
