"""OpenLineage from the gates: facets built from real results, real DAG runs through the real openlineage
provider with a file transport, no values in the events, and nothing at all without the provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_aisec.core.result import Finding, GateResult, InputRef, PolicyRef
from airflow_aisec.lineage import (
    RUN_FACET_JSON_SCHEMA,
    RUN_FACET_KEY,
    RUN_FACET_SCHEMA_URL,
    assertions,
    dataset_id,
    operator_lineage,
    rules_checked,
)
from tests.helpers.env import REPO
from tests.helpers.lineage import run_dag_with_lineage

SSN = "518-33-9071"
EMAIL = "lineage.planted-7c1@example.com"
CARD = "4539 1488 0343 6467"
TOKEN = "ZZplantedSigToken9f8e"
PLANTED = [SSN, EMAIL, CARD, "518339071", "4539148803436467", "lineage.planted-7c1", TOKEN]

EVIDENCE = {"location": "/trail", "seq": 7, "name": "000007.json", "sha256": "e" * 64}


def _result(verdict="fail", findings=(), **metrics) -> GateResult:
    return GateResult(gate="pii", verdict=verdict, policy=PolicyRef(name="p", sha256="a" * 64),
                      findings=list(findings), metrics=metrics, inputs=[InputRef(uri="/data/t.parquet")],
                      started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:00:01+00:00")


def _finding(column: str, enforcement="enforce", waived=False, rule="pii.entity_not_allowed") -> Finding:
    return Finding(rule=rule, message="m", count=3, location={"column": column, "entity": "US_SSN"},
                   enforcement=enforcement, waived=waived)


# --------------------------------------------------------------------------------------------
# Facets from results (no Airflow run)
# --------------------------------------------------------------------------------------------
def test_dataset_ids_follow_openlineage_naming_and_drop_credentials():
    assert dataset_id("/data/x.parquet") == ("file", "/data/x.parquet")
    assert dataset_id("rel/x.csv") == ("file", os.path.abspath("rel/x.csv"))
    assert dataset_id("file:///data/x.csv") == ("file", "/data/x.csv")
    assert dataset_id("s3://bucket/a/b.parquet") == ("s3://bucket", "a/b.parquet")
    assert dataset_id("s3://bucket") == ("s3://bucket", "/")
    planted = f"https://user:{TOKEN}@models.internal:8443/v1/chat?sig={TOKEN}#{TOKEN}"
    assert dataset_id(planted) == ("https://models.internal:8443", "/v1/chat")
    assert dataset_id("") is None


def test_one_assertion_per_rule_and_column_checked():
    result = _result(findings=[_finding("email"), _finding("notes", enforcement="warn")],
                     columns_scanned=["id", "email", "notes"])
    got = {(a["assertion"], a["column"]): a for a in assertions(result)}
    assert set(got) == {("pii.entity_in_column_name", None), ("pii.entity_not_allowed", "id"),
                        ("pii.entity_not_allowed", "email"), ("pii.entity_not_allowed", "notes")}
    assert got[("pii.entity_not_allowed", "id")]["success"] is True
    assert got[("pii.entity_not_allowed", "email")] == {"assertion": "pii.entity_not_allowed", "success": False,
                                                        "column": "email", "severity": "error", "actual": "3"}
    assert got[("pii.entity_not_allowed", "notes")]["severity"] == "warn"
    assert got[("pii.entity_in_column_name", None)]["success"] is True


def test_failures_are_never_hidden_and_waived_findings_count_as_success():
    odd = Finding(rule="pii.some_future_rule", message="m", location={}, enforcement="enforce")
    result = _result(findings=[odd, _finding("email", waived=True)], columns_scanned=["email"])
    got = {(a["assertion"], a["column"]): a["success"] for a in assertions(result)}
    assert got == {("pii.entity_in_column_name", None): True, ("pii.entity_not_allowed", "email"): True,
                   ("pii.some_future_rule", None): False}


def test_rules_checked_per_gate():
    drift = GateResult(gate="drift", verdict="pass", started_at="x", finished_at="y", metrics={"features": [
        {"feature": "age", "kind": "numeric", "thresholds": {"psi": {}, "ks_statistic": {}}},
        {"feature": "plan", "kind": "categorical", "thresholds": {"psi": {}}}]})
    assert set(rules_checked(drift)) == {("drift.type_changed", "age"), ("drift.psi", "age"),
                                         ("drift.ks_statistic", "age"), ("drift.type_changed", "plan"),
                                         ("drift.psi", "plan"), ("drift.unseen_category", "plan")}
    bias = GateResult(gate="bias", verdict="pass", started_at="x", finished_at="y", metrics={
        "columns": {"sensitive": ["sex"]}, "thresholds": {"demographic_parity_difference": {"max": 0.1}}})
    assert ("bias.demographic_parity_difference", "sex") in rules_checked(bias)
    for gate in ("endpoint", "prompt_injection", "model_scan", "signing", "storage", "source"):
        pairs = rules_checked(GateResult(gate=gate, verdict="pass", started_at="x", finished_at="y"))
        assert pairs and all(rule.startswith(f"{gate}.") for rule, _ in pairs), gate


def test_operator_lineage_objects_and_run_facet_schema():
    import jsonschema
    from openlineage.client.serde import Serde

    result = _result(findings=[_finding("email")], columns_scanned=["id", "email"])
    lineage = operator_lineage(result, EVIDENCE, outputs=["/data/out.parquet"])
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("file", "/data/t.parquet")]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("file", "/data/out.parquet")]
    facet = json.loads(Serde.to_json(lineage.run_facets[RUN_FACET_KEY]))
    assert facet["_schemaURL"] == RUN_FACET_SCHEMA_URL
    assert facet["verdict"] == "fail" and facet["policySha256"] == "a" * 64 and facet["evidenceSha256"] == "e" * 64
    schema = {k: v for k, v in RUN_FACET_JSON_SCHEMA.items() if k != "allOf"}  # no network for the OL $ref
    jsonschema.validate(facet, schema)
    assert operator_lineage(None, None) is None
    errored = _result(verdict="error", columns_scanned=["id"])
    lineage = operator_lineage(errored, None)
    assert lineage.inputs[0].inputFacets == {}  # an errored gate asserts nothing...
    assert lineage.run_facets[RUN_FACET_KEY].verdict == "error"  # ...and says why not


# --------------------------------------------------------------------------------------------
# The provider's default: disabled without a transport (other tests' DAG runs pay nothing)
# --------------------------------------------------------------------------------------------
def test_openlineage_is_disabled_in_the_test_process():
    from airflow.providers.openlineage import conf
    from airflow.providers.openlineage.plugins.openlineage import OpenLineageProviderPlugin

    assert not any(k.startswith(("AIRFLOW__OPENLINEAGE__TRANSPORT", "OPENLINEAGE_URL", "OPENLINEAGE__TRANSPORT"))
                   for k in os.environ)
    assert conf.is_disabled() is True
    assert OpenLineageProviderPlugin.listeners == []


# --------------------------------------------------------------------------------------------
# Real DAG runs
# --------------------------------------------------------------------------------------------
DAG = '''
import pendulum
from airflow.sdk import DAG
from airflow_aisec.operators.pii import PiiGateOperator, PiiRedactOperator
from airflow_aisec.operators.model_scan import ModelScanGateOperator

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False) as dag:
    PiiGateOperator(task_id="pii_pass", data={clean!r}, policy={policy!r})
    PiiGateOperator(task_id="pii_fail", data={dirty!r}, policy={policy!r})
    PiiRedactOperator(task_id="pii_redact", data={dirty!r}, output_uri={redacted!r}, policy={policy!r})
    ModelScanGateOperator(task_id="scan", model={model!r}, policy={policy!r})
    {s3_task}
'''

POLICY = """
version: 1
name: lineage-test
enforcement: enforce
pii:
  default_classification: public
  levels:
    public: {forbidden: ["*"]}
  redaction: {method: mask}
model_scan: {}
"""


@pytest.fixture(scope="module")
def lineage_inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lineage")
    clean, dirty = tmp / "clean.parquet", tmp / "dirty.parquet"
    pq.write_table(pa.table({"id": list(range(40)), "txt": ["weather is fine"] * 40}), clean)
    pq.write_table(pa.table({
        "id": list(range(40)),
        "email": [EMAIL if i % 4 == 0 else "" for i in range(40)],
        "notes": [f"ssn {SSN}, card {CARD}" if i == 9 else "routine visit" for i in range(40)],
    }), dirty)
    model = tmp / "model"
    model.mkdir()
    (model / "model.json").write_text('{"coef": [[0.1, 0.2]]}')
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    return {"tmp": tmp, "clean": str(clean), "dirty": str(dirty), "model": str(model), "policy": str(policy),
            "redacted": str(tmp / "redacted.parquet")}


def _by_key(facet: dict) -> dict:
    return {(a["assertion"], a.get("column")): a["success"] for a in facet["assertions"]}


@pytest.mark.integration
def test_real_dag_run_emits_assertions_and_run_facet(airflow_db, lineage_inputs, s3_server):
    client = s3_server.client()
    client.create_bucket(Bucket="lineage-data")
    client.upload_file(lineage_inputs["clean"], "lineage-data", "in/clean.parquet")
    s3_task = ("PiiGateOperator(task_id='pii_s3', data='s3://lineage-data/in/clean.parquet', "
               f"policy={lineage_inputs['policy']!r})")
    source = DAG.format(dag_id="aisec_lineage_gates", s3_task=s3_task, **lineage_inputs)
    run = run_dag_with_lineage(source, "aisec_lineage_gates", workdir=lineage_inputs["tmp"] / "ol")
    assert run.task_states == {"pii_pass": "success", "pii_fail": "failed", "pii_redact": "success",
                               "scan": "success", "pii_s3": "success"}, run.log[-4000:]

    # a passing gate: COMPLETE, its input dataset with every assertion successful, the run facet
    (done,) = run.task_events("pii_pass", "COMPLETE")
    (ds,) = done["inputs"]
    assert (ds["namespace"], ds["name"]) == ("file", lineage_inputs["clean"])
    assert _by_key(ds["inputFacets"]["dataQualityAssertions"]) == {
        ("pii.entity_in_column_name", None): True, ("pii.entity_not_allowed", "id"): True,
        ("pii.entity_not_allowed", "txt"): True}
    gate = done["run"]["facets"][RUN_FACET_KEY]
    assert gate["gate"] == "pii" and gate["verdict"] == "pass" and gate["_schemaURL"] == RUN_FACET_SCHEMA_URL
    assert len(gate["policySha256"]) == 64 and len(gate["evidenceSha256"]) == 64
    import jsonschema

    jsonschema.validate(gate, {k: v for k, v in RUN_FACET_JSON_SCHEMA.items() if k != "allOf"})

    # a failing gate: FAIL, the failing columns' assertions false, the clean column's true
    (failed,) = run.task_events("pii_fail", "FAIL")
    (ds,) = failed["inputs"]
    assert (ds["namespace"], ds["name"]) == ("file", lineage_inputs["dirty"])
    assert _by_key(ds["inputFacets"]["dataQualityAssertions"]) == {
        ("pii.entity_in_column_name", None): True, ("pii.entity_not_allowed", "id"): True,
        ("pii.entity_not_allowed", "email"): False, ("pii.entity_not_allowed", "notes"): False}
    gate = failed["run"]["facets"][RUN_FACET_KEY]
    assert gate["verdict"] == "fail" and gate["blockingFindings"] == 3 and len(gate["evidenceSha256"]) == 64
    assert gate["policySha256"] == done["run"]["facets"][RUN_FACET_KEY]["policySha256"]

    # redaction: the copy it writes is an output, not an input
    (red,) = run.task_events("pii_redact", "COMPLETE")
    assert [d["name"] for d in red["inputs"]] == [lineage_inputs["dirty"]]
    assert [(d["namespace"], d["name"]) for d in red["outputs"]] == [("file", lineage_inputs["redacted"])]

    # another gate type, and S3 naming
    (scan,) = run.task_events("scan", "COMPLETE")
    assert scan["inputs"][0]["name"] == lineage_inputs["model"]
    scan_assertions = scan["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert {a["assertion"] for a in scan_assertions} >= {"model_scan.dangerous_import", "model_scan.pickle_format"}
    assert all(a["success"] for a in scan_assertions)
    (s3,) = run.task_events("pii_s3", "COMPLETE")
    assert (s3["inputs"][0]["namespace"], s3["inputs"][0]["name"]) == ("s3://lineage-data", "in/clean.parquet")

    # no value from the data anywhere in the events
    for value in PLANTED:
        assert value not in run.events_text, value


_BLOCKED = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "openlineage" or name.startswith("airflow.providers.openlineage"):
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, _Block())
# ...and hide its distributions: Airflow discovers providers and plugins from package metadata
import importlib.metadata, importlib_metadata
for _mod in (importlib.metadata, importlib_metadata):
    def _visible(*args, _all=_mod.distributions, **kwargs):
        return (d for d in _all(*args, **kwargs) if "openlineage" not in (d.metadata["Name"] or "").lower())
    _mod.distributions = _visible
import json
from pathlib import Path
from airflow_aisec import lineage
from airflow_aisec.operators.pii import PiiGateOperator
from tests.helpers.airflow import run_dag_file, task_context
assert not lineage.openlineage_available()
op = PiiGateOperator(task_id="t", data=sys.argv[1], policy=sys.argv[2])
ctx = task_context()
verdict = op.execute(ctx)
facets = [op.get_openlineage_facets_on_complete(ctx["ti"]), op.get_openlineage_facets_on_failure(ctx["ti"])]
out = run_dag_file(Path(sys.argv[3]).read_text(), "aisec_lineage_blocked", dags_folder=Path(sys.argv[4]))
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "openlineage" or "providers.openlineage" in m)
print("AISEC-BLOCKED " + json.dumps({"verdict": verdict, "facets": [f is None for f in facets],
                                      "state": out.state, "tasks": out.task_states, "loaded": loaded}))
"""


@pytest.mark.integration
def test_without_the_openlineage_provider_nothing_changes(airflow_db, lineage_inputs):
    dags_folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag_file = lineage_inputs["tmp"] / "blocked_dag.py"
    dag_file.write_text(
        "import pendulum\nfrom airflow.sdk import DAG\nfrom airflow_aisec.operators.pii import PiiGateOperator\n"
        "with DAG('aisec_lineage_blocked', schedule=None, start_date=pendulum.datetime(2025, 1, 1)):\n"
        f"    PiiGateOperator(task_id='ok', data={lineage_inputs['clean']!r}, policy={lineage_inputs['policy']!r})\n"
        f"    PiiGateOperator(task_id='bad', data={lineage_inputs['dirty']!r}, policy={lineage_inputs['policy']!r})\n")
    env = {**os.environ, "PYTHONPATH": str(REPO),
           # even with a transport configured: without the provider there is no one to send to
           "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "console"})}
    proc = subprocess.run([sys.executable, "-c", _BLOCKED, lineage_inputs["clean"], lineage_inputs["policy"],
                           str(dag_file), str(dags_folder)], capture_output=True, text=True, timeout=600,
                          env=env, cwd=str(REPO), check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("AISEC-BLOCKED ")), None)
    assert proc.returncode == 0 and line, proc.stdout[-3000:] + proc.stderr[-5000:]
    got = json.loads(line.removeprefix("AISEC-BLOCKED "))
    assert got["verdict"] == "pass" and got["facets"] == [True, True]
    assert got["tasks"] == {"ok": "success", "bad": "failed"} and got["state"] == "failed"
    assert got["loaded"] == []


# --------------------------------------------------------------------------------------------
# Asset extras on pass / warn, none on fail (execute() with the SDK's real outlet accessors)
# --------------------------------------------------------------------------------------------
WARN_POLICY = POLICY.replace("enforcement: enforce", "enforcement: warn")


@pytest.mark.parametrize(("policy_text", "table", "verdict"), [
    (POLICY, "clean", "pass"), (WARN_POLICY, "dirty", "warn"), (POLICY, "dirty", "fail")])
def test_outlet_extra_on_pass_and_warn_only(lineage_inputs, tmp_path, policy_text, table, verdict):
    from airflow.sdk import Asset
    from airflow.sdk.exceptions import AirflowFailException
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from airflow_aisec.operators.pii import PiiGateOperator
    from tests.helpers.airflow import task_context

    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text)
    asset = Asset(name="certified_table", uri="file:///certified/table")
    other = Asset(name="other_output", uri="file:///certified/other")
    op = PiiGateOperator(task_id="t", data=lineage_inputs[table], policy=str(policy), outlets=[asset, other])
    context = {**task_context(), "outlet_events": OutletEventAccessors()}
    if verdict == "fail":
        with pytest.raises(AirflowFailException):
            op.execute(context)
        assert context["outlet_events"][asset].extra == {}
        return
    assert op.execute(context) == verdict
    pushed = {c.kwargs["key"]: c.kwargs["value"] for c in context["ti"].xcom_push.call_args_list}
    for target in (asset, other):
        cert = context["outlet_events"][target].extra["aisec"]
        assert cert == {"gate": "pii", "verdict": verdict,
                        "policy_sha256": pushed["aisec_result"]["policy"]["sha256"], "baseline_sha256": None,
                        "evidence_sha256": pushed["aisec_evidence"]["sha256"],
                        "evidence_seq": pushed["aisec_evidence"]["seq"]}
    text = json.dumps(context["outlet_events"][asset].extra)
    assert not any(value in text for value in PLANTED)


def test_run_facet_schema_file_matches_the_code():
    """The facet's schemaURL points at docs/reference/AisecGateRunFacet.json: keep that file equal to the code."""
    import json
    from pathlib import Path

    from airflow_aisec.lineage import RUN_FACET_JSON_SCHEMA, RUN_FACET_SCHEMA_URL

    published = Path(__file__).resolve().parents[2] / "docs" / "reference" / "AisecGateRunFacet.json"
    assert RUN_FACET_SCHEMA_URL.endswith("docs/reference/AisecGateRunFacet.json")
    assert json.loads(published.read_text()) == RUN_FACET_JSON_SCHEMA
