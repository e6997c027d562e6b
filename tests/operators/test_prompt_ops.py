"""Prompt-injection corpus gate in real Airflow runs: a poisoned RAG corpus stops the pipeline, a clean one
passes; results, evidence and logs carry rules, documents and counts, never text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import prompt_corpus as corpus

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

DAG = '''
import pendulum
from airflow.sdk import DAG, task
from airflow_aisec.operators.prompt_injection import PromptInjectionScanOperator

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False) as dag:
    @task
    def build_index():
        return "indexed"

    scan = PromptInjectionScanOperator(task_id="scan", data={data!r}, policy={policy!r},
                                       evidence_location={evidence!r})
    scan >> build_index()
'''


def strict_section(tmp_path: Path) -> str:
    strict = (REPO / "policies" / "strict.yaml").read_text()
    section = strict[strict.index("\nprompt_injection:\n") + 1:]
    section = section[: section.index("\nllm_redteam:")]
    path = tmp_path / "policy.yaml"
    path.write_text(f"version: 1\nname: rag-corpus\n{section}\n")
    return str(path)


def evidence_text(evidence: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in evidence.rglob("*") if p.is_file())


def test_poisoned_corpus_stops_the_pipeline(run_dag, tmp_path, capfd, caplog):
    docs = corpus.write_documents(tmp_path / "docs")
    evidence = tmp_path / "evidence"
    source = DAG.format(dag_id="prompt_scan_fail", data=str(docs), policy=strict_section(tmp_path),
                        evidence=str(evidence))
    out = run_dag(source, "prompt_scan_fail")
    assert out.state == "failed"
    assert out.task_states == {"scan": "failed", "build_index": "upstream_failed"}
    result = out.xcom("scan")
    assert result["verdict"] == "fail" and result["gate"] == "prompt_injection"
    rules = {f["rule"].split(".")[1] for f in result["findings"]}
    assert rules >= {"instruction_override", "role_reassignment", "system_prompt_extraction", "chat_template_marker",
                     "hidden_unicode", "homoglyph", "html_hidden_text", "encoded_payload", "exfiltration_url"}
    assert all(f["enforcement"] == "enforce" for f in result["findings"])
    assert result["metrics"]["documents"] == len(corpus.samples())
    captured = capfd.readouterr()
    logs = captured.out + captured.err + caplog.text
    assert "prompt_injection.instruction_override" in logs
    outputs = logs + json.dumps(list(out.xcoms.values()), default=str) + evidence_text(evidence)
    for sample in corpus.attacks():
        assert sample.text[:40] not in outputs, sample.id


def test_clean_corpus_passes(run_dag, tmp_path):
    path = corpus.write_jsonl(tmp_path / "chat.jsonl", corpus.benign())
    source = DAG.format(dag_id="prompt_scan_pass", data=str(path), policy=strict_section(tmp_path),
                        evidence=str(tmp_path / "evidence"))
    out = run_dag(source, "prompt_scan_pass")
    assert out.state == "success", out.task_states
    result = out.xcom("scan")
    assert result["verdict"] == "pass" and result["findings"] == []
    assert result["metrics"]["inputs"] == ["jsonl"] and result["inputs"][0]["sha256"]
