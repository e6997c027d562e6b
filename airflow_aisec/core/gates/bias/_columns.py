"""Which columns a bias check reads: the policy's merged with the caller's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from airflow_aisec.core.policy.sections.bias import SCORE_METRICS, BiasPolicy
from airflow_aisec.core.stats import split_names
from airflow_aisec.exceptions import ConfigurationError


@dataclass(frozen=True)
class BiasColumns:
    """The columns a bias check reads, resolved from the policy and the caller."""

    label: str
    prediction: str | None
    score: str | None
    sensitive: tuple[str, ...]
    intersections: tuple[tuple[str, ...], ...]

    @property
    def all(self) -> list[str]:
        cols = [self.label, self.prediction, self.score, *self.sensitive]
        return list(dict.fromkeys(c for c in cols if c))



def _one(kind: str, from_policy: str | None, from_caller: str | None) -> str | None:
    if from_policy and from_caller and from_policy != from_caller:
        raise ConfigurationError(
            f"{kind} column given as '{from_caller}' by the caller but the policy sets '{from_policy}'"
        )
    return from_policy or from_caller or None


def resolve_columns(
    policy: BiasPolicy,
    *,
    label: str | None = None,
    prediction: str | None = None,
    score: str | None = None,
    sensitive: Sequence[str] | str | None = None,
) -> BiasColumns:
    """Merge the policy's columns with the caller's.

    Raises:
        ConfigurationError: a required column is given nowhere, or caller and policy disagree.
    """
    lab = _one("label", policy.label, label)
    pred = _one("prediction", policy.prediction, prediction)
    sc = _one("score", policy.score, score)
    sens = list(dict.fromkeys([*policy.sensitive, *split_names(sensitive)]))
    if not lab:
        raise ConfigurationError("no label column: pass --label / label_column or set bias.label")
    if not pred and not (sc and policy.score_threshold is not None):
        raise ConfigurationError(
            "no prediction column: pass --prediction / prediction_column, set bias.prediction, "
            "or set bias.score with bias.score_threshold"
        )
    if not sens:
        raise ConfigurationError("no sensitive column: pass --sensitive / sensitive_columns or set bias.sensitive")
    roles = [c for c in (lab, pred, sc) if c]
    clash = [c for c in sens if c in roles]
    if clash or len(set(roles)) != len(roles):
        raise ConfigurationError("label, prediction, score and sensitive columns must be distinct columns")
    if isinstance(policy.intersections, list):
        inter = [tuple(cols) for cols in policy.intersections]
        for cols in inter:
            unknown = [c for c in cols if c not in sens]
            if unknown:
                raise ConfigurationError(f"intersection column(s) {unknown} are not sensitive columns")
    elif policy.intersections and len(sens) >= 2:
        inter = [tuple(sens)]
    else:
        inter = []
    needs_score = SCORE_METRICS & set(policy.thresholds)
    if needs_score and not sc:
        raise ConfigurationError(f"threshold(s) {sorted(needs_score)} need a score column (bias.score / --score)")
    return BiasColumns(label=lab, prediction=pred, score=sc, sensitive=tuple(sens), intersections=tuple(inter))
