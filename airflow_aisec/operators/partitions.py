"""Gates over partitioned data with Airflow's dynamic task mapping: scan each partition, merge, judge once.

Three tasks (see ``dags/partitioned_pii.py``)::

    parts = GatePartitionListOperator(task_id="list_partitions", data="s3://lake/customers/", by="file")
    scans = GatePartitionScanOperator.partial(task_id="scan_partition", gate="pii", policy=POLICY) \\
        .expand(data=parts.output)
    gate = GateMergeOperator(task_id="pii_gate", gate="pii", policy=POLICY, summaries=scans.output,
                             partitions=parts.output, data="s3://lake/customers/",
                             inputs={"classification": "internal"})

* :class:`GatePartitionListOperator` (or :func:`list_partitions` inside a ``@task``) lists the
  partitions at run time: files under a directory / ``s3://`` prefix, or Parquet row groups. The
  return value is the plain URI list (what ``.expand`` maps over); the same list, signed for this
  DAG run, goes to XCom key :data:`MANIFEST_XCOM_KEY`.
* :class:`GatePartitionScanOperator`, one mapped task per partition, returns (XCom) the partition's
  summary under each policy the gate runs under (its own and the platform's baseline): counts,
  positions and digests, never a value, each with its sha256 ``digest`` and a MAC for this DAG run.
  It writes no result.
* :class:`GateMergeOperator` (a gate operator: one result in XCom, one record in the audit trail)
  verifies the signed partition list of the task given as ``partitions=`` and every summary's MAC
  and digest (a summary changed, forged or replayed through XCom is ``partitions.summary_tampered``,
  a list missing or changed is ``partitions.manifest_invalid``, both critical violations), checks
  that every listed partition was scanned exactly once, merges, and applies the policy once. The
  result's ``metrics.partitions`` lists every partition's digest. It runs when the scans are done,
  whatever their state (``trigger_rule="all_done"``): a failed scan leaves no summary and the gate
  records verdict ``error`` rather than not running.

The MACs are HMAC-SHA256 under ``[aisec] handoff_key`` (workers only; see
:mod:`airflow_aisec.core.partition_macs`): without it the three tasks refuse to run.

The core (summaries per gate) is :mod:`airflow_aisec.core.partitions`; modules are imported at run time.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_aisec.operators.base import AisecGateOperator, GateMixin, load_baseline, s3_client_for

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import CheckOutcome

#: Key of the summaries in a scan task's return value.
SUMMARIES_KEY = "summaries"
#: XCom key of the signed partition list a listing task pushes next to its return value.
MANIFEST_XCOM_KEY = "aisec_partitions"


def partition_keys() -> list[bytes]:
    """``[aisec] handoff_key`` (ConfigurationError when unset: the partition tasks refuse to run)."""
    from airflow_aisec import settings
    from airflow_aisec.core.partition_macs import partition_keys as parse

    return parse(settings.handoff_key())


def _list_and_sign(context: Any, data: str, by: str, aws_conn_id: str | None) -> list[str]:
    from airflow_aisec.core.partition_macs import sign_manifest
    from airflow_aisec.core.partitions import list_partitions as core_list
    from airflow_aisec.exceptions import AisecError, ServiceUnavailableError

    try:
        keys = partition_keys()  # before any listing: no key, no list
        parts = core_list(str(data), s3_client=s3_client_for(aws_conn_id, str(data)), by=by)
    except ServiceUnavailableError as exc:
        raise AirflowException(str(exc)) from None
    except AisecError as exc:
        raise AirflowFailException(str(exc)) from None
    ti = context["ti"]
    ti.xcom_push(key=MANIFEST_XCOM_KEY, value=sign_manifest(parts, keys, dag_id=ti.dag_id, run_id=ti.run_id,
                                                            task_id=ti.task_id, data=str(data), by=by))
    return parts


def list_partitions(data: str, *, by: str = "file", aws_conn_id: str | None = "aws_default") -> list[str]:
    """Partition URIs of ``data`` (for a ``@task``: ``return list_partitions(DATA, by="row_group")``).

    Inside a task it also pushes the signed list the merge verifies (:data:`MANIFEST_XCOM_KEY`).
    """
    from airflow.sdk import get_current_context

    try:
        context = get_current_context()
    except RuntimeError:  # not in a task: nothing crosses XCom
        from airflow_aisec.core.partitions import list_partitions as core_list

        return core_list(str(data), s3_client=s3_client_for(aws_conn_id, str(data)), by=by)
    return _list_and_sign(context, data, by, aws_conn_id)


def sign_envelope(envelope: dict[str, Any]) -> dict[str, Any]:
    """A scan envelope (``{"gate", "partition", "summaries"}``, e.g. from ``pii_envelopes_spark``) with
    each summary's MAC for the current DAG run: for a custom scan task (``@task.pyspark``) feeding
    :class:`GateMergeOperator`."""
    from airflow.sdk import get_current_context

    from airflow_aisec.core.partition_macs import sign_summary

    keys = partition_keys()
    ti = get_current_context()["ti"]
    return {**envelope, SUMMARIES_KEY: [sign_summary(s, keys, dag_id=ti.dag_id, run_id=ti.run_id)
                                        for s in envelope[SUMMARIES_KEY]]}


NEEDS_PARTITIONS = (
    "GateMergeOperator needs partitions= set to the output of the listing task (parts.output of "
    "GatePartitionListOperator, or a @task returning list_partitions()): the merge verifies its "
    "signed list, so that a partition dropped with its summary cannot go unnoticed"
)


def _listing_task(partitions: Any) -> str | None:
    """The task whose return value ``partitions`` is (an ``XComArg``); None for anything else."""
    from airflow.sdk import XComArg

    if not isinstance(partitions, XComArg):
        return None
    refs = list(partitions.iter_references())
    if len(refs) != 1 or refs[0][1] != "return_value":
        return None
    return str(refs[0][0].task_id)


def gate_inputs(gate: str, loaded: LoadedPolicy, inputs: dict[str, Any]) -> dict[str, Any]:
    """The gate's inputs; the source gate resolves the policy's relative paths against its directory."""
    out = dict(inputs)
    if gate == "source":
        from airflow_aisec.core.gates.source import policy_dir

        out.setdefault("base_dir", policy_dir(loaded.source))
    return out


class GatePartitionListOperator(BaseOperator):
    """List the partitions of ``data`` at run time; the return value feeds ``.expand(data=...)``.

    Args:
        data: A file, a directory or an ``s3://`` prefix (templated).
        by: ``file`` (every data file) or ``row_group`` (every Parquet row group; CSV files stay whole).
        aws_conn_id: Airflow AWS connection for ``s3://`` data.
    """

    template_fields: Sequence[str] = ("data", "by")

    def __init__(self, *, data: str, by: str = "file", aws_conn_id: str | None = "aws_default", **kwargs: Any):
        super().__init__(**kwargs)
        self.data = data
        self.by = by
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> list[str]:
        parts = _list_and_sign(context, self.data, self.by, self.aws_conn_id)
        self.log.info("%d partition(s) of %s by %s", len(parts), self.data, self.by)
        return parts


class GatePartitionScanOperator(GateMixin, BaseOperator):
    """Summarize one partition for ``gate`` (map it with ``.partial(...).expand(data=partitions)``).

    The policy is loaded and confined exactly as a gate's (``[aisec] policy_roots``, no run-time
    choice unless allowed, the baseline floor too). Returns ``{"gate", "partition", "summaries"}``
    with one summary per distinct policy section; no result, no trail record (the merge writes them).

    Args:
        gate: Gate name (``pii``, ``source``, ...; :data:`airflow_aisec.core.partitions.SUMMARIES`).
        data: Partition URI (templated): a file, or ``file.parquet#row_group=N``.
        inputs: The gate's extra inputs (templated), as for the merge.
        data_format: ``csv`` / ``parquet`` when the extension does not tell.
        aws_conn_id: Airflow AWS connection for ``s3://`` data.
        policy: Policy file (templated); see :class:`~airflow_aisec.operators.base.AisecGateOperator`.
    """

    template_fields: Sequence[str] = ("policy", "data", "inputs", "data_format")
    operator_extra_links = ()  # no result of its own to link to
    ui_color = "#f3e6e6"

    def __init__(self, *, gate: str, data: str, inputs: dict[str, Any] | None = None,
                 data_format: str | None = None, aws_conn_id: str | None = "aws_default",
                 policy: str | None = None, **kwargs: Any) -> None:
        self._init_gate(policy=policy, **kwargs)
        self.gate = gate
        self.data = data
        self.inputs = inputs or {}
        self.data_format = data_format
        self.aws_conn_id = aws_conn_id

    def layers(self) -> list[LoadedPolicy]:
        from airflow_aisec.core.gate import PolicyLayers
        from airflow_aisec.exceptions import PolicyError

        applicable = PolicyLayers(self.load_gate_policy(), load_baseline()).applicable(self.gate)
        if not applicable:
            raise PolicyError(f"no policy configures the '{self.gate}' gate")
        return applicable

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_aisec.exceptions import AisecError, ServiceUnavailableError

        try:
            return self.summarize(context)
        except ServiceUnavailableError as exc:
            raise AirflowException(f"{self.gate} partition scan: {exc}") from None  # retryable
        except AisecError as exc:
            raise AirflowFailException(f"{self.gate} partition scan: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a library's message may quote data: type and frames only
            frames = "".join(traceback.format_tb(exc.__traceback__))
            self.log.error("partition scan raised %s; traceback (message withheld):\n%s", type(exc).__name__, frames)
            raise AirflowFailException(f"{self.gate} partition scan failed ({type(exc).__name__})") from None

    def summarize(self, context: Context) -> dict[str, Any]:
        from airflow_aisec.core.partition_macs import sign_summary
        from airflow_aisec.core.partitions import gate_module, section_digest

        keys = partition_keys()  # before any read: no key, no summary
        ti = context["ti"]
        module = gate_module(self.gate)
        client = s3_client_for(self.aws_conn_id, str(self.data).split("#", 1)[0])
        out: dict[str, dict[str, Any]] = {}
        for loaded in self.layers():
            section = loaded.section(self.gate)
            key = section_digest(section)
            if key not in out:
                summary = module.summarize_partition(section, str(self.data), partition_id=str(self.data),
                                                     s3_client=client, fmt=self.data_format or None,
                                                     **gate_inputs(self.gate, loaded, self.inputs))
                out[key] = sign_summary(summary.signed_json(), keys, dag_id=ti.dag_id, run_id=ti.run_id)
        self.log.info("%s: summarized partition %s under %d policy section(s)", self.gate, self.data, len(out))
        return {"gate": self.gate, "partition": str(self.data), SUMMARIES_KEY: list(out.values())}


class GateMergeOperator(AisecGateOperator):
    """Merge the partition summaries of ``gate`` and apply the policy once: one result, one trail record.

    Args:
        gate: Gate name, as given to the scans.
        summaries: The scans' output (``scans.output``, an ``XComArg``).
        partitions: Required: the output of the task that listed the partitions (``parts.output`` of
            :class:`GatePartitionListOperator`, or of a ``@task`` returning :func:`list_partitions`).
            The merge verifies the signed list that task pushed; each partition must have exactly one
            summary. Missing (or a literal list), the DAG does not load (``ValueError``), and a merge
            changed after construction refuses at run time.
        data: How the result names the data (templated; default: the file, or the common directory).
        inputs: The gate's extra inputs (templated), e.g. ``{"classification": "internal"}`` for pii.
        policy: Policy file (templated); the same the scans used.
        evidence_location: Extra audit trail copy (templated).
    """

    template_fields: Sequence[str] = (*AisecGateOperator.template_fields, "summaries", "partitions", "data",
                                      "inputs")

    def __init__(self, *, gate: str, summaries: Any, partitions: Any = None, data: str | None = None,
                 inputs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.gate = gate
        self.summaries = summaries
        self.partitions = partitions
        # Known before rendering turns the XComArg into its value: where the signed list is.
        self._aisec_listing_task = _listing_task(partitions)
        if self._aisec_listing_task is None:
            raise ValueError(f"{self.task_id}: {NEEDS_PARTITIONS}")  # at parse time: the DAG does not load
        self.data = data
        self.inputs = inputs or {}

    def listed_partitions(self, keys: list[bytes], context: Context) -> list[str]:
        """The partitions of the signed list, which must equal the rendered ``partitions``."""
        from airflow_aisec.core.partition_macs import RULE_MANIFEST, verify_manifest
        from airflow_aisec.exceptions import ConfigurationError, SecurityViolationError

        task = getattr(self, "_aisec_listing_task", None)
        if self.partitions is None or task is None:
            # Refused when the DAG is parsed too; this is the check that counts (DAG code can change the
            # operator after construction).
            raise ConfigurationError(NEEDS_PARTITIONS)
        ti = context["ti"]
        manifest = ti.xcom_pull(task_ids=task, key=MANIFEST_XCOM_KEY)
        expected = verify_manifest(manifest, keys, dag_id=ti.dag_id, run_id=ti.run_id, task_id=task)
        if [str(p) for p in self.partitions] != expected:
            raise SecurityViolationError(
                f"the partitions returned by task '{task}' differ from the list it signed (changed in XCom)",
                rule=RULE_MANIFEST, location={"task_id": task},
            )
        return expected

    def check(self, loaded: LoadedPolicy, context: Context) -> CheckOutcome:
        from airflow_aisec.core.partition_macs import verify_summary
        from airflow_aisec.core.partitions import gate_module, load_summary, merge_all, section_digest
        from airflow_aisec.exceptions import ConfigurationError, InputDataError

        keys = partition_keys()
        expected = self.listed_partitions(keys, context)
        ti = context["ti"]
        section = loaded.section(self.gate)
        wanted = section_digest(section)
        envelopes = list(self.summaries or [])
        missing = sum(1 for e in envelopes if not isinstance(e, dict))
        if missing or not envelopes:
            raise InputDataError(f"{missing or 'all'} partition scan(s) left no summary (failed or skipped)")
        leaves, digests, covered = [], {}, set()
        for envelope in envelopes:
            chosen = [s for s in envelope.get("summaries", []) if isinstance(s, dict) and s.get("policy") == wanted]
            if not chosen:
                raise ConfigurationError(f"partition {str(envelope.get('partition'))[:200]} was scanned under "
                                         f"another {self.gate} policy section")
            content = verify_summary(chosen[0], keys, dag_id=ti.dag_id, run_id=ti.run_id)
            summary = load_summary(self.gate, content)  # verifies the digest
            # Partitions by what each summary covers: one scan task may cover several (a Spark scan).
            parts = set(summary.coverage.parts)
            if summary.partition in digests or parts & covered:
                raise InputDataError(f"partition {summary.partition} has two summaries")
            digests[summary.partition] = summary.digest()
            covered |= parts
            leaves.append(summary)
        absent = sorted(set(expected) - covered)
        extra = sorted(covered - set(expected))
        if absent or extra:
            raise InputDataError(f"summaries do not match the partitions listed: {len(absent)} missing "
                                 f"{absent[:3]}, {len(extra)} unexpected {extra[:3]}")
        merged = merge_all(leaves)
        outcome = gate_module(self.gate).check_summary(section, merged, data=self.data,
                                                       **gate_inputs(self.gate, loaded, self.inputs))
        outcome.metrics["partitions"] = {"count": len(leaves), "merged_digest": merged.digest(),
                                         "digests": dict(sorted(digests.items()))}
        self.log.info("%s: merged %d partition summaries (digest %s)", self.gate, len(leaves),
                      merged.digest()[:16])
        return outcome
