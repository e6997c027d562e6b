"""Presidio's pattern recognizers load without its NLP engines, and Presidio imported afterwards is whole.

Each check runs in a fresh interpreter: this test process may have imported Presidio already (then
``pattern_recognizers`` returns the real module and there is nothing to check).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NLP_STACK = ("spacy", "thinc", "torch", "transformers", "stanza", "presidio_analyzer.analyzer_engine",
             "presidio_analyzer.nlp_engine.nlp_artifacts", "presidio_analyzer.recognizer_registry")

pytestmark = pytest.mark.timeout(300)


def _python(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False,
                         cwd=REPO, env=os.environ.copy(), stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_recognizer_the_detector_uses_loads_without_the_nlp_engines():
    report = _python(
        "import json, sys\n"
        "from airflow_aisec.core.gates.pii._presidio import pattern_recognizers\n"
        "from airflow_aisec.core.gates.pii._patterns import PRESIDIO_RECOGNIZERS\n"
        "from airflow_aisec.core.gates.pii._entity_specs import PRESIDIO_CLASSES, build_recognizer\n"
        "from airflow_aisec.core.gates.pii import _national\n"
        "pr = pattern_recognizers()\n"
        "names = sorted(set(PRESIDIO_RECOGNIZERS.values()) | set(PRESIDIO_CLASSES.values()))\n"
        "classes = {n: getattr(pr, n) for n in names}\n"
        "entities = {}\n"
        "for e in list(PRESIDIO_CLASSES) + list(_national.PATTERNS):\n"
        "    entities[e] = build_recognizer(e).supported_entities\n"
        "from presidio_analyzer import EntityRecognizer\n"
        "print(json.dumps({'modules': sorted(sys.modules), 'names': names,\n"
        "  'where': {n: c.__module__ for n, c in classes.items()},\n"
        "  'recognizers': all(issubclass(c, EntityRecognizer) for c in classes.values()),\n"
        "  'entities': entities}))\n"
    )
    loaded = set(report["modules"])
    assert not [m for m in NLP_STACK if m in loaded]
    assert report["recognizers"]
    assert all(report["where"][n].startswith("presidio_analyzer.predefined_recognizers.") for n in report["names"])
    assert all(report["entities"][e] == [e] for e in report["entities"])


def test_presidio_imported_afterwards_is_whole_and_keeps_the_same_classes():
    """Code importing Presidio the usual way after the light load (the NLP scanner, a user's task) gets all
    of it, with the very classes the detector already holds, and a working analyzer."""
    report = _python(
        "import json, sys\n"
        "from airflow_aisec.core.gates.pii._presidio import pattern_recognizers\n"
        "light = pattern_recognizers()\n"
        "ssn, phone = light.UsSsnRecognizer, light.PhoneRecognizer\n"
        "before = sorted(m for m in ('spacy', 'presidio_analyzer.analyzer_engine') if m in sys.modules)\n"
        "from presidio_analyzer import AnalyzerEngine, RecognizerRegistry\n"
        "from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngineProvider\n"
        "import presidio_analyzer, presidio_analyzer.predefined_recognizers as real\n"
        "import presidio_analyzer.predefined_recognizers.generic.phone_recognizer as phone_module\n"
        "registry = RecognizerRegistry(recognizers=[ssn()])\n"
        "class NoNlp:\n"
        "    def is_loaded(self): return True\n"
        "    def get_supported_languages(self): return ['en']\n"
        "    def get_supported_entities(self): return []\n"
        "    def process_text(self, text, language): return None\n"
        "from presidio_analyzer.nlp_engine import NlpEngine\n"
        "NlpEngine.register(NoNlp)\n"
        "engine = AnalyzerEngine(registry=registry, nlp_engine=NoNlp(), supported_languages=['en'])\n"
        "found = engine.analyze('ssn 536-22-1234', language='en', entities=['US_SSN'])\n"
        "print(json.dumps({'before': before, 'same_ssn': real.UsSsnRecognizer is ssn,\n"
        "  'same_phone': real.PhoneRecognizer is phone, 'root_whole': 'AnalyzerEngine' in presidio_analyzer.__all__,\n"
        "  'real_package': sys.modules['presidio_analyzer.predefined_recognizers'] is real and real is not light,\n"
        "  'artifacts': phone_module.NlpArtifacts is NlpArtifacts, 'provider': callable(NlpEngineProvider),\n"
        "  'found': [(r.entity_type, r.start, r.end) for r in found]}))\n"
    )
    assert report["before"] == []
    assert report["same_ssn"] and report["same_phone"]
    assert report["root_whole"] and report["real_package"]
    assert report["artifacts"] and report["provider"]
    assert report["found"] == [["US_SSN", 4, 15]]


_SCAN = (
    "import json, sys\n"
    "{first}\n"
    "from airflow_aisec.core.policy import load_policy\n"
    "from airflow_aisec.core.gates.pii import check_pii\n"
    "section = load_policy({policy!r}).section('pii')\n"
    "outcome = check_pii(section, {data!r}, classification='restricted')\n"
    "d = outcome.model_dump(mode='json')\n"
    "print(json.dumps({{'findings': d.get('findings'), 'columns': (d.get('metrics') or {{}}).get('columns'),\n"
    "  'light': 'presidio_analyzer.analyzer_engine' not in sys.modules}}, sort_keys=True, default=str))\n"
)


def test_light_and_full_presidio_classify_a_table_alike(tmp_path):
    data = tmp_path / "people.csv"
    data.write_text(
        "email,ssn,iban,phone,site,ip,card,note\n"
        "ana@example.org,078-05-1120,DE89370400440532013000,+1 202 555 0143,https://example.org/a,10.1.2.3,"
        "4111111111111111,call 212-555-0199 about NIR 1 84 12 76 451 089 46\n"
        "bo@example.com,219-09-9999,GB82WEST12345698765432,+44 20 7946 0958,www.example.com,2001:db8::1,"
        "5555555555554444,BSN 111222333 and SIREN 732829320\n"
        "cy@example.net,457-55-5462,FR1420041010050500013M02606,(555) 010-9999,http://x.example.net/,192.168.0.1,"
        "378282246310005,no id here\n"
    )
    policy = str(REPO / "policies" / "strict.yaml")
    light = _python(_SCAN.format(first="pass", policy=policy, data=str(data)))
    full = _python(_SCAN.format(first="import presidio_analyzer  # the whole package first", policy=policy,
                                data=str(data)))
    assert light.pop("light") is True and full.pop("light") is False
    assert light == full
    for column, entity in (("email", "EMAIL_ADDRESS"), ("ssn", "US_SSN"), ("iban", "IBAN_CODE"), ("ip", "IP_ADDRESS")):
        assert entity in light["columns"][column]["entities"]  # both saw the PII: not two empty results


def test_nlp_scanner_after_a_light_scan_uses_the_whole_presidio(tmp_path):
    """The usual order in one task: the pattern detector (light) first, then the NLP scanner (whole Presidio)."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "PERSON", "pattern": [{"LOWER": "alice"},
                                                                               {"LOWER": "zqwerty"}]}])
    nlp.to_disk(tmp_path / "tiny_ner")
    data = tmp_path / "notes.csv"
    data.write_text("note\nmet Alice Zqwerty today\nnothing here\n")
    report = _python(
        "import json, sys\n"
        "from airflow_aisec.core.policy import parse_policy\n"
        "from airflow_aisec.core.gates.pii import check_pii\n"
        "from airflow_aisec.core.gates.pii._scan import new_detector\n"
        "policy = parse_policy(json.dumps({'version': 1, 'name': 't', 'pii': {'text': {'enabled': False},\n"
        f"  'nlp': {{'enabled': True, 'model': {str(tmp_path / 'tiny_ner')!r}}}}}}}).encode())\n"
        "section = policy.section('pii')\n"
        "new_detector(section)\n"
        "light = 'spacy' not in sys.modules and 'presidio_analyzer.analyzer_engine' not in sys.modules\n"
        f"outcome = check_pii(section, {str(data)!r})\n"
        "print(json.dumps({'light': light, 'found': sorted((f.location['entity'], tuple(f.location['rows']))\n"
        "                                                  for f in outcome.findings)}))\n"
    )
    assert report["light"] is True
    assert report["found"] == [["PERSON", [0]]]
