"""Run a gate: load its policy, run the core check, and turn the outcome into a result.

Both the Airflow operators and the CLI call :func:`run_gate` (or :func:`run_check`), so a
gate means the same thing wherever it runs, including the platform's policy floor: with a
baseline, the check runs under the gate's own policy and under the baseline, and the stricter
outcome wins rule by rule (:class:`PolicyLayers`, :func:`run_layers`). What a finding means (enforcement, waivers,
verdict) is :mod:`airflow_aisec.core.verdict`'s job. Errors fail closed: any exception inside
the check gives verdict ``error``, never ``pass``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_aisec.core.outputs import LayerOutputs, staging
from airflow_aisec.core.policy import LoadedPolicy
from airflow_aisec.core.result import AirflowRef, CheckOutcome, GateResult, Verdict, utcnow
from airflow_aisec.core.verdict import (
    LayerRun,
    error_result,
    evaluate,
    evaluate_layered,
    security_violation_result,
)
from airflow_aisec.exceptions import AisecError, PolicyError, SecurityViolationError, ServiceUnavailableError

if TYPE_CHECKING:
    from airflow_aisec.core.policy.base import GateSection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateRun:
    """A finished gate: its result, and the exception that ended it (if any)."""

    result: GateResult
    exception: BaseException | None = None

    @property
    def retryable(self) -> bool:
        return isinstance(self.exception, ServiceUnavailableError)


def run_check(
    gate: str,
    loaded: LoadedPolicy,
    check: Callable[[], CheckOutcome],
    *,
    airflow: AirflowRef | None = None,
    started_at: str | None = None,
) -> GateRun:
    """Run one core check and evaluate it against the policy, failing closed.

    Args:
        gate: Gate name; also the policy section that configures it.
        loaded: The validated policy.
        check: Zero-argument callable doing the actual work.
        airflow: Airflow identifiers when run inside a task.
        started_at: Start time, when the caller measured it (e.g. before loading the policy).

    Returns:
        The result, and the exception when the check raised one.
    """
    started_at = started_at or utcnow()
    try:
        outcome = check()
        if not isinstance(outcome, CheckOutcome):
            raise TypeError(f"check for gate {gate!r} returned {type(outcome).__name__}, not CheckOutcome")
        return GateRun(evaluate(gate, loaded, outcome, started_at=started_at, airflow=airflow))
    except SecurityViolationError as exc:
        return GateRun(
            security_violation_result(gate, exc, loaded=loaded, started_at=started_at, airflow=airflow), exc
        )
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - fail closed on anything; a library's exit(0) too
        log.debug("gate %s raised %s", gate, type(exc).__name__)
        return GateRun(error_result(gate, exc, loaded=loaded, started_at=started_at, airflow=airflow), exc)


@dataclass(frozen=True)
class PolicyLayers:
    """The policies a gate runs under: the one it was given and the platform's floor (baseline).

    Attributes:
        policy: The gate's own policy.
        baseline: ``[aisec] baseline_policy``, None without a floor.
    """

    policy: LoadedPolicy | None
    baseline: LoadedPolicy | None = None

    def applicable(self, gate: str) -> list[LoadedPolicy]:
        """The policies that configure ``gate`` (have its section), own policy first."""
        out = []
        for loaded in (self.policy, self.baseline):
            if loaded is not None and getattr(loaded.policy, gate, None) is not None:
                out.append(loaded)
        return out

    def sections(self, gate: str) -> list[GateSection]:
        """The gate's sections of :meth:`applicable` (own first): a check's side effect that must respect
        the floor (e.g. a secrets hand-off) checks every one of them."""
        return [loaded.section(gate) for loaded in self.applicable(gate)]


#: Work done once, after the verdict, only when it lets the run go on (``pass``/``warn``): e.g. the
#: secrets hand-off. Returns extra findings/metrics evaluated like the check's (or None).
Finish = Callable[[GateResult, PolicyLayers], "CheckOutcome | None"]


def _same_check(gate: str, a: LoadedPolicy, b: LoadedPolicy) -> bool:
    """Whether the check would do exactly the same under both policies (then it runs once)."""
    if os.path.dirname(a.source) != os.path.dirname(b.source):  # relative paths resolve against it
        return False
    return a.sha256 == b.sha256 or a.section(gate).model_dump() == b.section(gate).model_dump()


def _merged(outcome: CheckOutcome, extra: CheckOutcome) -> CheckOutcome:
    return CheckOutcome(
        findings=[*outcome.findings, *extra.findings],
        metrics={**outcome.metrics, **extra.metrics},
        inputs=[*outcome.inputs, *extra.inputs],
        reports=[*outcome.reports, *extra.reports],
    )


def _failed(gate: str, exc: BaseException, layers: PolicyLayers, started_at: str,
            airflow: AirflowRef | None) -> GateRun:
    if isinstance(exc, SecurityViolationError):
        return GateRun(security_violation_result(gate, exc, loaded=layers.policy, baseline=layers.baseline,
                                                 started_at=started_at, airflow=airflow), exc)
    log.debug("gate %s raised %s", gate, type(exc).__name__)
    return GateRun(error_result(gate, exc, loaded=layers.policy, baseline=layers.baseline, started_at=started_at,
                                airflow=airflow), exc)


_GOES_ON = (Verdict.PASS.value, Verdict.WARN.value)


def _settled(result: GateResult, published: dict[str, str], withheld: list[str]) -> GateResult:
    """The result of a layered run once its outputs are settled: an output's digest is the written file's
    (the last layer's), and what was not written is named."""
    inputs = [i.model_copy(update={"sha256": published[i.uri]}) if i.uri in published else i for i in result.inputs]
    metrics = {**result.metrics, "outputs_withheld": sorted(withheld)} if withheld else result.metrics
    return result.model_copy(update={"inputs": inputs, "metrics": metrics})


def run_layers(
    gate: str,
    layers: PolicyLayers,
    check: Callable[[LoadedPolicy], CheckOutcome],
    *,
    airflow: AirflowRef | None = None,
    started_at: str | None = None,
    finish: Finish | None = None,
) -> GateRun:
    """Run a check under every policy that configures the gate and evaluate the stricter outcome.

    The check runs under the own policy first and the baseline last, once only when both would do the
    same. When it runs twice, what it writes (a redacted copy, a signature, a report) is staged, each
    layer building on the earlier one's, and written once after a ``pass``/``warn`` verdict
    (:mod:`airflow_aisec.core.outputs`): the written file obeys both policies, and a run that fails
    writes nothing. The first exception ends the gate (``error``, or ``fail`` for a security
    violation). ``finish`` runs after a ``pass``/``warn`` verdict; what it returns is evaluated too.

    Raises:
        Nothing: every failure is a result.
    """
    started_at = started_at or utcnow()
    applicable = layers.applicable(gate)
    try:
        if not applicable:
            if layers.policy is None:
                raise PolicyError(f"no policy configures the '{gate}' gate")
            layers.policy.section(gate)  # raises the usual "no '<gate>' section" error
        # Policies under which the check really runs: a layer configured like an earlier one reuses its outcome.
        distinct = [loaded for i, loaded in enumerate(applicable)
                    if not any(_same_check(gate, earlier, loaded) for earlier in applicable[:i])]
        outputs = LayerOutputs()
        with contextlib.ExitStack() as stack:
            if len(distinct) > 1:  # more than one run: what the check writes is held back, then written once
                stack.enter_context(staging(outputs))
                stack.callback(outputs.settle, 0, False)  # an exception on the way: remove everything staged
            runs: list[LayerRun] = []
            for loaded in applicable:
                earlier = next((r for r in runs if _same_check(gate, r.loaded, loaded)), None)
                if earlier is None:
                    outputs.layer = next(i for i, d in enumerate(distinct) if d is loaded)
                outcome = earlier.outcome if earlier is not None else check(loaded)
                if not isinstance(outcome, CheckOutcome):
                    raise TypeError(f"check for gate {gate!r} returned {type(outcome).__name__}, not CheckOutcome")
                runs.append(LayerRun(loaded, outcome))
            evaluate_runs = functools.partial(evaluate_layered, gate, policy=layers.policy,
                                              baseline=layers.baseline, started_at=started_at, airflow=airflow)
            result = evaluate_runs(runs)
            settled = outputs.settle(len(distinct), result.verdict in _GOES_ON) if outputs.deliveries else None
        if finish is not None and result.verdict in _GOES_ON:
            extra = finish(result, layers)
            if extra is not None:
                result = evaluate_runs([LayerRun(r.loaded, _merged(r.outcome, extra)) for r in runs])
        return GateRun(_settled(result, *settled) if settled else result)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - fail closed on anything; a library's exit(0) too
        return _failed(gate, exc, layers, started_at, airflow)


def run_gate(
    gate: str,
    load: Callable[[], LoadedPolicy],
    check: Callable[[LoadedPolicy], CheckOutcome],
    *,
    airflow: AirflowRef | None = None,
    baseline: Callable[[], LoadedPolicy | None] | None = None,
    finish: Finish | None = None,
) -> GateRun:
    """Load the policy (and the baseline), refuse a gate nothing configures, then :func:`run_layers`.

    The one entry point for the operators and the CLI: a policy or baseline that is missing,
    invalid, outside the policy roots or not the pinned file, or a gate neither configures, is a
    verdict ``error``, never a pass. With a baseline, the check runs under both policies and the
    stricter outcome wins rule by rule (:func:`~airflow_aisec.core.verdict.evaluate_layered`); the
    own policy may lack the gate's section when the baseline has it.

    Args:
        gate: Gate name; also the policy section that configures it.
        load: Loads and validates the gate's own policy (raises :class:`~airflow_aisec.exceptions.PolicyError`).
        check: The core check, given one loaded policy (called once per policy that configures the gate).
        airflow: Airflow identifiers when run inside a task.
        baseline: Loads the platform's policy floor (None or returning None: no floor).
        finish: Work done once after a ``pass``/``warn`` verdict (see :data:`Finish`).

    Returns:
        The result, and the exception that ended the gate (if any).
    """
    started_at = utcnow()
    layers = PolicyLayers(None)
    try:
        layers = PolicyLayers(load())
        if baseline is not None:
            layers = PolicyLayers(layers.policy, baseline())
    except AisecError as exc:
        return GateRun(error_result(gate, exc, loaded=layers.policy, baseline=layers.baseline,
                                    started_at=started_at, airflow=airflow), exc)
    return run_layers(gate, layers, check, airflow=airflow, started_at=started_at, finish=finish)
