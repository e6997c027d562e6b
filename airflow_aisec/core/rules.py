"""The rule catalogue: every rule id a gate can emit, in one place.

SARIF (rule descriptions), OpenLineage (the assertions a gate always evaluates) and the documentation
(``docs/reference/rules.md``) read it; ``tests/core/test_rules_catalogue.py`` scans the package for the
rule ids the code can emit and fails when one is missing here, or when an entry here is emitted nowhere.

Two kinds of entries:

* a fixed :class:`Rule` (``pii.entity_not_allowed``);
* a :class:`Family` of parametrised ids (``bias.<metric>``): its members come from the tuple the gate
  itself uses (the policy section's allowed metrics, the prompt-injection rule names, the endpoint
  rules), so the catalogue cannot drift from them. An *open* family (``platform.<rule id>``, whose ids
  come from the policy) has no fixed members and matches by prefix.

``always`` marks the rules a gate evaluates on every run whatever its input (OpenLineage reports one
assertion per such rule); the others are evaluated per column / feature / threshold or only in some
modes. Nothing here imports Airflow; the gate modules that hold member tuples are imported lazily.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

#: What each gate checks (one line), by gate / policy section name.
GATE_DESCRIPTIONS: dict[str, str] = {
    "source": "dataset source validation (origin, pins, freshness, schema, expectations, poisoning signals)",
    "pii": "PII classification of tabular data against the dataset's declared level",
    "secrets": "Vault secret grants and hand-off for the DAG",
    "signing": "model signature and provenance verification",
    "model_scan": "unsafe serialization in model files (never loads a model)",
    "bias": "fairness metrics per group against the policy",
    "drift": "distribution drift of current data against a reference",
    "prompt_injection": "prompt-injection payloads in training / RAG / prompt data",
    "llm_redteam": "red-team probe suite against a candidate model",
    "endpoint": "security of a model serving endpoint before promotion",
    "storage": "S3 bucket posture for training data and models",
    "platform": "DAG structure and pod isolation rules",
    "partitions": "merging per-partition summaries (source, pii, bias, drift over partitioned data)",
}
#: Pseudo gate of rules any gate can emit.
ANY_GATE = "*"


@dataclass(frozen=True)
class Rule:
    """One rule id.

    Attributes:
        id: ``<gate>.<check>``.
        gate: The gate emitting it (``*``: any gate).
        description: One value-free sentence (SARIF ``shortDescription``).
        always: The gate evaluates it on every run (an OpenLineage assertion per run).
        family: The family pattern (``bias.<metric>``) when the id is a family member.
    """

    id: str
    gate: str
    description: str
    always: bool = False
    family: str | None = None


@dataclass(frozen=True)
class Family:
    """Parametrised rule ids ``<prefix><name>``; ``members`` None means open (names from the policy)."""

    pattern: str
    gate: str
    description: str
    members: tuple[str, ...] | None
    always: bool = False
    #: Per-member description, when the gate has one.
    member_descriptions: tuple[tuple[str, str], ...] = ()

    @property
    def prefix(self) -> str:
        return self.pattern.split("<", 1)[0]

    def matches(self, rule_id: str) -> bool:
        name = rule_id[len(self.prefix):] if rule_id.startswith(self.prefix) else ""
        if self.gate == ANY_GATE:  # "<gate>.security_violation"
            return rule_id.endswith(self.pattern.split(">", 1)[1]) and "." in rule_id
        if not name:
            return False
        return self.members is None or name in self.members


_S, _PII, _SEC, _SIG, _MS = "source", "pii", "secrets", "signing", "model_scan"
_FIXED: tuple[tuple[str, str, bool], ...] = (
    # (id, description, always)
    ("source.digest_mismatch", "The dataset's sha256 does not match its pin", True),
    ("source.version_mismatch", "The S3 object's VersionId does not match its pin", True),
    ("source.etag_mismatch", "The S3 object's ETag does not match its pin", True),
    ("source.not_pinned", "The dataset has no pin where the policy requires one", True),
    ("source.stale", "The dataset is older than the policy's freshness limit (or has no usable timestamp)", True),
    ("source.row_count", "The dataset's row count is outside the policy's bounds", True),
    ("source.schema_extra_column", "The dataset has a column the declared schema does not list", True),
    ("source.schema_type", "A column's type or presence does not match the declared schema", True),
    ("source.expectation", "A Great Expectations expectation failed", True),
    ("source.label_shift", "The label distribution shifted against the reference (possible poisoning)", True),
    ("source.duplicate_rate", "Too many duplicate rows (possible poisoning)", True),
    ("source.out_of_range", "Values outside the reference's range (possible poisoning)", True),
    ("source.volume_change", "The row count changed too much against the reference (possible poisoning)", True),
    ("pii.entity_in_column_name", "A column name itself looks like a PII value", True),
    ("pii.entity_not_allowed", "A column carries a PII entity type its dataset's classification does not allow",
     False),
    ("pii.redaction_residual", "The redacted copy still carries PII", False),
    ("secrets.path_not_allowed", "A secret path the policy does not grant to the DAG was requested", False),
    ("secrets.database_role_not_allowed", "A database role the policy does not grant was requested", False),
    ("secrets.database_role_unreadable", "A granted database role cannot be read with the gate's Vault token",
     False),
    ("secrets.pattern_matches_nothing", "A granted secret pattern matches no secret in Vault", False),
    ("secrets.value_unmaskable", "A secret value too short or too common to be masked in logs", False),
    ("secrets.unmaskable_keys", "Secrets holding values that cannot be masked in logs", False),
    ("secrets.lease_ttl_exceeds_policy", "Dynamic database credentials live longer than the policy allows", False),
    ("secrets.wrapping_token_expired", "A hand-off wrapping token expired before it was used", False),
    ("secrets.wrapping_token_reused", "A hand-off wrapping token was already unwrapped (possible theft)", False),
    ("secrets.wrapping_token_substituted", "A hand-off wrapping token is not the one the gate created", False),
    ("secrets.handoff_tampered", "The sealed secret hand-off in XCom was altered", False),
    ("signing.unsigned", "The model has no signature", True),
    ("signing.malformed", "The signature bundle is malformed", True),
    ("signing.untrusted_key", "The model is signed by a key the policy does not trust", True),
    ("signing.tampered", "Model content does not match its signature", True),
    ("signing.verification_failed", "The model signature could not be verified", True),
    ("signing.provenance_missing", "The model has no signed provenance statement", False),
    ("signing.provenance_signature", "The provenance statement's signature does not verify", False),
    ("signing.provenance_digest", "The provenance statement names another model digest", False),
    ("signing.provenance_dataset", "A dataset in the provenance has no passing source and PII record in the trail",
     False),
    ("model_scan.dangerous_import", "A model file would import a dangerous global when loaded", True),
    ("model_scan.unlisted_import", "A model file imports a global not on the policy allowlist", True),
    ("model_scan.pickle_format", "A pickle-based model file where the policy allows only pickle-free formats", True),
    ("model_scan.extension_not_allowed", "A model file extension the policy does not allow", True),
    ("model_scan.format_mismatch", "A model file's content does not match its extension", True),
    ("model_scan.unscannable", "A model file could not be scanned", True),
    ("model_scan.symlink", "A symbolic link in a model directory", True),
    ("prompt_injection.unscanned_file", ("A scanned directory holds a symbolic link out of it or to a file the "
                                         "gate does not scan, or a FIFO, socket or device: not read, but what "
                                         "reads the directory may read it"), True),
    ("model_scan.external_data_path", "An ONNX tensor's external data path is absolute or escapes the model directory",
     True),
    ("model_scan.unsafe_layer", "A Keras model holds a Lambda layer or a layer class from outside Keras", True),
    ("model_scan.scanner_error", "A scanner failed on a model file", False),
    ("bias.missing_sensitive_value", "Rows without a value in a sensitive column", True),
    ("bias.insufficient_groups", "Too few groups to compare", True),
    ("bias.group_too_small", "A group is smaller than the policy's minimum group size", True),
    ("bias.group_without_positive_labels", "A group has no positive labels, so rate metrics are undefined", False),
    ("bias.group_without_negative_labels", "A group has no negative labels, so rate metrics are undefined", False),
    ("drift.type_changed", "A feature's type differs between reference and current data", False),
    ("drift.unseen_category", "Categories in the current data the reference never had", False),
    ("llm_redteam.injection_success", "A prompt-injection probe made the model follow the injected instruction", True),
    ("llm_redteam.system_prompt_leak", "The model revealed its system prompt", True),
    ("llm_redteam.incomplete", "Too few probes got an answer to judge the model", True),
    ("llm_redteam.access_denied", "The model endpoint refused the red-team client's credentials", False),
    ("storage.encryption_missing", "The bucket has no default encryption", True),
    ("storage.encryption_too_weak", "The bucket's default encryption is weaker than the policy requires", True),
    ("storage.kms_key_not_allowed", "The bucket encrypts with a KMS key the policy does not allow", True),
    ("storage.public_access_block", "The bucket's public access block is missing or incomplete", True),
    ("storage.tls_policy_missing", "The bucket policy does not deny requests without TLS", True),
    ("storage.versioning_disabled", "The bucket has no versioning", True),
    ("storage.public_acl", "The bucket ACL grants access to everyone or to any AWS user", True),
    ("storage.public_policy", "The bucket policy grants access to any principal", True),
    ("storage.object_unencrypted", "Objects stored without encryption", True),
    ("storage.object_kms_key_not_allowed", "Objects encrypted with a KMS key the policy does not allow", True),
    ("storage.object_limit_reached", "More objects than the policy's max_objects: only the first were checked", False),
    ("platform.waiver_route_invalid", "An approval route of the platform policy cannot work as written", False),
    ("partitions.summary_tampered", "A partition summary was altered or merged with one of another run", False),
    ("partitions.manifest_invalid", "The partition list is missing, altered or not this run's", False),
)

#: Endpoint rule descriptions, by name (the ids come from ``core.gates.endpoint.RULES``).
_ENDPOINT = {
    "tls_required": "The endpoint is served over plain HTTP where the policy requires TLS",
    "tls_certificate": "The endpoint's certificate is not trusted",
    "tls_hostname": "The endpoint's certificate does not name its host",
    "tls_version": "The endpoint accepts a TLS version below the policy's minimum",
    "unauthenticated_access": "A protected path answers without credentials",
    "invalid_token_accepted": "A protected path accepts a wrong token",
    "openapi_unenforced": "An operation the OpenAPI document secures answers without valid credentials",
    "health_failed": "The health path does not answer with success",
    "forbidden_path_served": "A path the policy forbids (admin, debug, docs) is served",
    "cors_wildcard_credentials": "CORS allows any origin together with credentials",
    "body_limit_missing": "An oversized request body is accepted",
    "rate_limit_missing": "A burst of requests is never rate limited",
}


def _bias_metrics() -> tuple[str, ...]:
    from airflow_aisec.core.policy.sections.bias import DISPARITY_METRICS, GROUP_METRICS

    return GROUP_METRICS + DISPARITY_METRICS


def _drift_metrics() -> tuple[str, ...]:
    from airflow_aisec.core.policy.sections.drift import DRIFT_METRICS

    return tuple(DRIFT_METRICS)


def _prompt_injection() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    from airflow_aisec.core.gates.prompt_injection._tally import RULE_INFO
    from airflow_aisec.core.policy.sections.prompt_injection import RULES

    return RULES, tuple((r, f"Text carries {RULE_INFO[r][1]}") for r in RULES)


def _endpoint() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    from airflow_aisec.core.gates.endpoint import GATE, RULES

    names = tuple(r[len(GATE) + 1:] for r in RULES)
    return names, tuple((n, _ENDPOINT.get(n, n.replace("_", " ").capitalize())) for n in names)


def _pods() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    from airflow_aisec.core.gates.platform._pods import POD_RULES

    return tuple(POD_RULES), tuple((r, f"A task pod breaks the isolation rule: {d}") for r, d in POD_RULES.items())


def _families() -> tuple[Family, ...]:
    pi, pi_text = _prompt_injection()
    ep, ep_text = _endpoint()
    pods, pods_text = _pods()
    return (
        Family("bias.<metric>", "bias", "A fairness metric the policy bounds is out of bounds (per group or "
               "between groups)", _bias_metrics()),
        Family("drift.<statistic>", "drift", "A drift statistic of a feature is out of the policy's bounds",
               _drift_metrics()),
        Family("prompt_injection.<rule>", "prompt_injection", "A prompt-injection detector fired above its "
               "threshold", pi, always=True, member_descriptions=pi_text),
        Family("endpoint.<rule>", "endpoint", "An endpoint security check failed", ep, always=True,
               member_descriptions=ep_text),
        Family("platform.<pod rule>", "platform", "A task pod breaks an isolation rule", pods,
               member_descriptions=pods_text),
        # Open families: the names come from the policy or the gate at run time.
        Family("platform.<rule id>", "platform", "A protected task has no required gate upstream on a blocking "
               "path (a structural rule of the platform policy)", None),
        Family("<gate>.security_violation", ANY_GATE, "Something only an attack or a misuse explains (no more "
               "specific rule); never waivable", None),
    )


@functools.cache
def families() -> tuple[Family, ...]:
    """Every family of parametrised rule ids (members read from the gates' own tuples)."""
    return _families()


@functools.cache
def catalogue() -> dict[str, Rule]:
    """Every rule id with a fixed name (fixed rules and the members of closed families), in gate order."""
    out: dict[str, Rule] = {}
    for rid, text, always in _FIXED:
        out[rid] = Rule(rid, rid.split(".", 1)[0], text, always)
    for fam in families():
        if fam.members is None:
            continue
        texts = dict(fam.member_descriptions)
        for name in fam.members:
            rid = fam.prefix + name
            if rid in out:
                raise ValueError(f"rule {rid} is both fixed and a member of {fam.pattern}")
            out[rid] = Rule(rid, fam.gate, texts.get(name) or f"{fam.description}: {name}", fam.always, fam.pattern)
    return dict(sorted(out.items(), key=lambda kv: (list(GATE_DESCRIPTIONS).index(kv[1].gate), 0)))


def lookup(rule_id: str) -> Rule | None:
    """The catalogue entry of ``rule_id`` (an open family's ids get one built from the family), or None."""
    rule = catalogue().get(rule_id)
    if rule is not None:
        return rule
    for fam in families():
        if fam.members is None and fam.matches(rule_id):
            gate = rule_id.split(".", 1)[0] if fam.gate == ANY_GATE else fam.gate
            return Rule(rule_id, gate, fam.description, fam.always, fam.pattern)
    return None


def known(rule_id: str) -> bool:
    """True when ``rule_id`` is in the catalogue (fixed, family member or an open family's id)."""
    return lookup(rule_id) is not None


def gate_rules(gate: str, *, always: bool | None = None) -> tuple[Rule, ...]:
    """The fixed rules of ``gate`` (optionally only those it always / not always evaluates)."""
    return tuple(r for r in catalogue().values() if r.gate == gate and (always is None or r.always == always))


def always_evaluated(gate: str) -> tuple[str, ...]:
    """Rule ids ``gate`` evaluates on every run (OpenLineage: one assertion each)."""
    return tuple(r.id for r in gate_rules(gate, always=True))


def describe(rule_id: str, fallback: Callable[[str], str] | None = None) -> str | None:
    """A rule's short description (or ``fallback(rule_id)`` / None when unknown)."""
    rule = lookup(rule_id)
    if rule is not None:
        return rule.description
    return fallback(rule_id) if fallback else None


__all__ = [
    "ANY_GATE",
    "GATE_DESCRIPTIONS",
    "Family",
    "Rule",
    "always_evaluated",
    "catalogue",
    "describe",
    "families",
    "gate_rules",
    "known",
    "lookup",
]
