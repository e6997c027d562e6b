"""PII gate throughput and accuracy vs Presidio's BatchAnalyzerEngine (pattern-only, same entity set).

Data: a Parquet table of ROWS rows x 5 text columns (default 1,000,000 x 5) with planted PII and
decoys that trip naive detectors (integer ids, Luhn-invalid 16-digit references, dates, versions,
file names, order numbers):

  contact       e-mail addresses and phone numbers in ~10% of cells, placeholders elsewhere
  notes         free text; ~6% of cells carry one SSN / card / IBAN / IP / URL / e-mail / phone
  reference     payment references: Luhn-invalid 16-digit numbers, invoice ids, integers; ~2% IBANs
  passport_no   US passport numbers in ~5% of cells ("pending" / empty elsewhere)
  bank_account  US bank account numbers in ~5% of cells

Gate: ``check_pii`` end to end on the file (reads and hashes the Parquet file, builds the
recognizers, full scan, the nine entity types), timed on its second call in the process, i.e.
after the one-time import of Presidio/spaCy, the same way Presidio is timed (its import and engine
set-up are not timed); the first, cold call is printed too. Baseline: Presidio 2.2's ``BatchAnalyzerEngine``
with the ``no_op`` NLP engine (pattern recognizers only), ``analyze_dict`` per column (so the
column name is passed as context, as Presidio intends for tables), same nine entity types,
default score threshold. Presidio does a few thousand cells per second, so by default it runs on
a seeded random subsample of rows and its cells/s is extrapolated (the output says so); the gate's
precision and recall are shown on the full table and on the same subsample.

Precision / recall: over (cell, entity type) pairs; a planted value found as its type is a true
positive, any other type reported for a cell is a false positive. Presidio is also shown keeping
only results with score >= 0.4 (its own weak patterns score 0.05).

Targets (issue 3): gate cells/s >= 200x Presidio's, with precision and recall at least Presidio's.

Usage: python bench/bench_pii.py [--rows N] [--presidio-rows N] [--seed S] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_RATIO = 200.0
ENTITIES = ["EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_PASSPORT",
            "US_BANK_NUMBER", "URL"]
CODE = {e: i + 1 for i, e in enumerate(ENTITIES)}
COLUMNS = ["contact", "notes", "reference", "passport_no", "bank_account"]

WORDS = ["the", "customer", "asked", "about", "delivery", "status", "of", "the", "order", "and", "was", "told", "it", "shipped", "on", "time", "refund", "issued", "after", "review", "item", "arrived", "damaged", "replacement", "sent", "please", "confirm", "by", "friday", "meeting", "notes", "follow", "up", "next", "week", "with", "the", "team", "about", "the", "quarterly", "report"]
AREA = ["212", "415", "312", "617", "206", "303", "512", "702", "801", "919", "646", "408"]
DOMAINS = ["example.com", "mail.example.org", "corp-example.net", "example.co.uk", "inbox.example.io"]
FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory"]


# --------------------------------------------------------------------------------------------------
# Generators (valid by the entity's own rules, so ground truth is real PII)
# --------------------------------------------------------------------------------------------------
def luhn_digit(body: str) -> str:
    digits = [int(d) for d in body + "0"]
    total = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
    return str((10 - total % 10) % 10)


def card(rng: random.Random) -> str:
    prefix = rng.choice(["4", "51", "52", "55", "6011"])
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(15 - len(prefix)))
    number = body + luhn_digit(body)
    style = rng.random()
    if style < 0.4:
        return " ".join(number[i:i + 4] for i in range(0, 16, 4))
    if style < 0.7:
        return "-".join(number[i:i + 4] for i in range(0, 16, 4))
    return number


def luhn_invalid_ref(rng: random.Random) -> str:
    body = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(14))
    bad = (int(luhn_digit(body)) + rng.randint(1, 9)) % 10
    return body + str(bad)


def iban(rng: random.Random) -> str:
    if rng.random() < 0.5:
        country, bban = "DE", "".join(str(rng.randint(0, 9)) for _ in range(18))
    else:
        country = "GB"
        bban = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + "".join(
            str(rng.randint(0, 9)) for _ in range(14))
    numeric = (bban + country + "00").translate({ord(c): str(ord(c) - 55) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"})
    check = 98 - int(numeric) % 97
    value = f"{country}{check:02d}{bban}"
    return " ".join(value[i:i + 4] for i in range(0, len(value), 4)) if rng.random() < 0.5 else value


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def phone(rng: random.Random) -> str:
    area, exch, line = rng.choice(AREA), rng.randint(201, 989), rng.randint(0, 9999)
    style = rng.random()
    if style < 0.3:
        return f"({area}) {exch}-{line:04d}"
    if style < 0.6:
        return f"{area}-{exch}-{line:04d}"
    if style < 0.85:
        return f"+1 {area} {exch} {line:04d}"
    return rng.choice(["+44 20 7946 0", "+44 161 496 0", "+49 30 9018 2"]) + f"{rng.randint(100, 999)}"


def email(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)}.{rng.choice(FIRST)}{rng.randint(1, 9999)}@{rng.choice(DOMAINS)}"


def ip(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    return "2001:db8:" + ":".join(f"{rng.randint(0, 0xffff):x}" for _ in range(6))


def url(rng: random.Random) -> str:
    host = rng.choice(["www.example.com", "shop.example.org", "portal.example.net", "example.io"])
    return f"https://{host}/{rng.choice(['account', 'orders', 'profile'])}/{rng.randint(1, 99999)}"


def passport(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"{rng.randint(100000000, 999999999)}"
    return rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") + f"{rng.randint(10000000, 99999999)}"


def bank(rng: random.Random) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(rng.randint(8, 17)))


def sentence(rng: random.Random) -> str:
    words = rng.sample(WORDS, rng.randint(5, 12))
    decoy = rng.random()
    if decoy < 0.25:
        words.insert(rng.randint(0, len(words)), f"order {rng.randint(10000, 9999999)}")
    elif decoy < 0.4:
        words.append(f"on 2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} at {rng.randint(8, 18)}:{rng.randint(0, 59):02d}")
    elif decoy < 0.5:
        words.append(f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)} see train.py and report.pdf")
    elif decoy < 0.6:
        words.append(f"total ${rng.randint(1, 999)}.{rng.randint(0, 99):02d} ({rng.randint(1, 99)}%)")
    return " ".join(words)


NOTE_PLANTS = {
    "US_SSN": lambda r: f"customer ssn {ssn(r)} verified",
    "CREDIT_CARD": lambda r: f"paid with card {card(r)} yesterday",
    "IBAN_CODE": lambda r: f"refund to {iban(r)} requested",
    "IP_ADDRESS": lambda r: f"login from {ip(r)} blocked",
    "URL": lambda r: f"see {url(r)} for details",
    "EMAIL_ADDRESS": lambda r: f"reply to {email(r)} asap",
    "PHONE_NUMBER": lambda r: f"call back on {phone(r)} after 5pm",
}


def generate(rows: int, seed: int):
    """Columns (lists of str) and ground truth (int8 entity code per cell, 0 = no PII)."""
    import phonenumbers

    rng = random.Random(seed)
    data = {c: [] for c in COLUMNS}
    truth = {c: np.zeros(rows, dtype=np.int8) for c in COLUMNS}
    note_types = list(NOTE_PLANTS)
    for i in range(rows):
        r = rng.random()
        if r < 0.05:
            data["contact"].append(email(rng))
            truth["contact"][i] = CODE["EMAIL_ADDRESS"]
        elif r < 0.10:
            value = phone(rng)
            data["contact"].append(value)
            if phonenumbers.is_valid_number(phonenumbers.parse(value, "US")):
                truth["contact"][i] = CODE["PHONE_NUMBER"]
        else:
            data["contact"].append(rng.choice(["n/a", "ask front desk", "unknown", f"see CRM #{rng.randint(1000, 99999)}",
                                               "call back later", ""]))
        if rng.random() < 0.06:
            kind = rng.choice(note_types)
            text = NOTE_PLANTS[kind](rng)
            if kind == "PHONE_NUMBER":
                number = text.split(" on ", 1)[1].rsplit(" after", 1)[0]
                if not phonenumbers.is_valid_number(phonenumbers.parse(number, "US")):
                    kind = None
            data["notes"].append(text)
            if kind:
                truth["notes"][i] = CODE[kind]
        else:
            data["notes"].append(sentence(rng))
        r = rng.random()
        if r < 0.02:
            data["reference"].append(iban(rng))
            truth["reference"][i] = CODE["IBAN_CODE"]
        elif r < 0.6:
            data["reference"].append(luhn_invalid_ref(rng))
        elif r < 0.8:
            data["reference"].append(f"INV-2024-{rng.randint(0, 999999):06d}")
        else:
            data["reference"].append(str(rng.randint(100000, 9999999)))
        if rng.random() < 0.05:
            data["passport_no"].append(passport(rng))
            truth["passport_no"][i] = CODE["US_PASSPORT"]
        else:
            data["passport_no"].append(rng.choice(["", "pending", "N/A"]))
        if rng.random() < 0.05:
            data["bank_account"].append(bank(rng))
            truth["bank_account"][i] = CODE["US_BANK_NUMBER"]
        else:
            data["bank_account"].append(rng.choice(["", "closed", "pending"]))
    return data, truth


# --------------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------------
def score(predicted: dict[str, dict[int, set[str]]], truth: dict[str, np.ndarray], rows) -> tuple[float, float, int, int, int]:
    """Precision, recall, tp, fp, fn over (cell, entity) pairs, restricted to ``rows``."""
    tp = fp = fn = 0
    row_set = {int(r) for r in rows} if rows is not None else None
    for col in COLUMNS:
        codes = truth[col]
        preds = predicted.get(col, {})
        idx = np.flatnonzero(codes) if row_set is None else [r for r in sorted(row_set) if codes[r]]
        for r in idx:
            want = ENTITIES[codes[r] - 1]
            if want in preds.get(int(r), set()):
                tp += 1
            else:
                fn += 1
        for r, ents in preds.items():
            if row_set is not None and r not in row_set:
                continue
            want = ENTITIES[codes[r] - 1] if codes[r] else None
            fp += sum(1 for e in ents if e != want)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, tp, fp, fn


def gate_cells(path: str, policy) -> tuple[dict[str, dict[int, set[str]]], dict]:
    """Per-cell detections through the gate's own code path (same Detector, plans, chance correction)."""
    from airflow_aisec.core.gates.pii._detect import ChecksumTally, build_plan, iter_column_detections
    from airflow_aisec.core.gates.pii._patterns import Detector
    from airflow_aisec.core.gates.pii._presidio import quiet_presidio
    from airflow_aisec.core.gates.pii._table import iter_rows, open_for_scan
    from airflow_aisec.core.gates.pii._validators import coincidental

    detector = Detector(policy.entities, column_hints=policy.column_hints)
    predicted: dict[str, dict[int, set[str]]] = {c: {} for c in COLUMNS}
    tallies = {c: ChecksumTally() for c in COLUMNS}
    with quiet_presidio():
        dataset = open_for_scan(Path(path), "parquet", path)
        plans = build_plan(detector, COLUMNS)
        for batch, rows in iter_rows(dataset, COLUMNS, batch_rows=policy.scan.batch_rows, uri=path):
            for plan in plans:
                for i, _text, cell in iter_column_detections(batch.column(plan.name), plan, detector,
                                                             tally=tallies[plan.name]):
                    if cell.entities:
                        predicted[plan.name][int(rows[i])] = set(cell.entities)
    for col in COLUMNS:
        for e, (n, valid) in tallies[col].items():
            if coincidental(e, n, valid):
                for ents in predicted[col].values():
                    ents.discard(e)
    counts = {c: {} for c in COLUMNS}
    for col, cells in predicted.items():
        for ents in cells.values():
            for e in ents:
                counts[col][e] = counts[col].get(e, 0) + 1
    return predicted, counts


def selected_entities(name: str) -> list[str]:
    """``--entities``: the nine base entities, the policy's default selection, or every pattern entity."""
    from airflow_aisec.core.policy.sections.pii import ALL_PATTERN_ENTITIES, DEFAULT_ENTITIES

    return {"base": list(ENTITIES), "default": list(DEFAULT_ENTITIES), "all": list(ALL_PATTERN_ENTITIES)}[name]


def add_all_pattern_recognizers(engine, entities: list[str]) -> None:
    """Give Presidio's engine a recognizer for every selected entity its English registry lacks: its own
    non-English pattern recognizers (DE, ES, IT, PL, ... registered for "en") and, for the European ids
    Presidio has none for, the gate's recognizers of the same shape (Presidio's ``PatternRecognizer``)."""
    from airflow_aisec.core.gates.pii._entity_specs import build_recognizer

    present = {e for r in engine.registry.recognizers for e in r.supported_entities}
    for entity in entities:
        if entity in present or entity == "PHONE_NUMBER":
            continue
        recognizer = build_recognizer(entity)
        recognizer.supported_language = "en"
        engine.registry.add_recognizer(recognizer)


class PresidioBaseline:
    """Presidio's BatchAnalyzerEngine, pattern-only (``no_op`` NLP engine), same entity set as the gate."""

    def __init__(self, entities: list[str] | None = None) -> None:
        import logging

        import tldextract
        import tldextract.tldextract as tld_module
        from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        # Presidio's e-mail validator downloads the public-suffix list on first use: use the bundled
        # snapshot so Presidio is timed without a network timeout (and without a traceback).
        tld_module.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
        provider = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "no_op", "models": [{"lang_code": "en", "model_name": "no_op"}]})
        engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
        self.entities = list(entities or ENTITIES)
        add_all_pattern_recognizers(engine, self.entities)
        self.batch = BatchAnalyzerEngine(analyzer_engine=engine)
        self.batch.analyze_iterator(["warm up jane@example.com"], language="en", entities=self.entities)
        self.results: list[tuple[np.ndarray, list]] = []
        self.seconds: list[float] = []

    def run(self, table, rows: np.ndarray) -> float:
        """Analyze ``rows`` (all five columns); returns cells/s of this run."""
        sub = table.take(rows)
        columns = {c: sub.column(c).to_pylist() for c in COLUMNS}
        started = time.perf_counter()
        results = list(self.batch.analyze_dict(columns, language="en", entities=self.entities))
        seconds = time.perf_counter() - started
        self.results.append((rows, results))
        self.seconds.append(seconds)
        return len(rows) * len(COLUMNS) / seconds

    def predictions(self, threshold: float) -> dict[str, dict[int, set[str]]]:
        predicted: dict[str, dict[int, set[str]]] = {c: {} for c in COLUMNS}
        for rows, results in self.results:
            for res in results:
                for j, cell_results in enumerate(res.recognizer_results):
                    ents = {r.entity_type for r in cell_results if r.score >= threshold and r.score > 0}
                    if ents:
                        predicted[res.key][int(rows[j])] = ents
        return predicted


def multilingual_bench(per_locale: int, seed: int) -> int:
    """Names, addresses and phones in free-text notes of seven Faker locales, plus Faker phone columns and
    decoys: per-entity precision / recall and cells/s of the gate (offline gazetteers, address patterns,
    phonenumbers) and of Presidio (pattern recognizers with the no_op NLP engine: it has no PERSON /
    LOCATION without a spaCy model, which is used when one is installed)."""
    import pyarrow as pa

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from airflow_aisec.core.gates.pii._detect import build_plan, detect_column
    from airflow_aisec.core.gates.pii._patterns import Detector
    from airflow_aisec.core.gates.pii._presidio import quiet_presidio
    from airflow_aisec.core.gates.pii._text import build_text_scanner
    from airflow_aisec.core.policy.sections.pii import PiiPolicy
    from tests.helpers import pii_corpus

    notes = pii_corpus.notes(per_locale, seed=seed % 10_000)
    negatives = list(pii_corpus.HARD_NEGATIVES) * max(1, per_locale // 20)
    texts = [n.text for n in notes] + negatives
    phones = [p for loc in pii_corpus.LOCALES for p in pii_corpus.phones(loc, per_locale, seed=seed % 10_000)]
    decoys = pii_corpus.decoys(len(phones), seed=seed % 10_000)
    policy = PiiPolicy()
    with quiet_presidio():
        detector = Detector(policy.entities, phone_regions=policy.phone_regions)
        scanner = build_text_scanner(policy)
    ents = ("PERSON", "LOCATION", "PHONE_NUMBER")
    runs = []
    for _warm in range(2):  # the second run is timed: gazetteers loaded, like Presidio's warmed-up engine
        started = time.perf_counter()
        with quiet_presidio():
            plan = build_plan(detector, ["notes"])[0]
            found = {i: [(m.entity, m.start, m.end) for m in cell.matches] for i, _t, cell in
                     detect_column(pa.array(texts), plan, detector, scanner).iter_cells()}
            phone_plan = build_plan(detector, ["phone"])[0]
            phone_hits = set(detect_column(pa.array(phones + decoys), phone_plan, detector)
                             .hits().get("PHONE_NUMBER", np.array([], dtype=np.int64)).tolist())
        runs.append(time.perf_counter() - started)
    gate_seconds = runs[-1]
    gate_rate = (len(texts) + len(phones) + len(decoys)) / gate_seconds

    presidio = PresidioBaseline(["PHONE_NUMBER"])
    spacy_model = next((m for m in ("en_core_web_lg", "en_core_web_md", "en_core_web_sm")
                        if __import__("spacy").util.is_package(m)), None)
    n_p = min(len(texts), 2000)
    started = time.perf_counter()
    p_notes = list(presidio.batch.analyze_iterator(texts[:n_p], language="en", entities=["PHONE_NUMBER"]))
    p_phone = list(presidio.batch.analyze_iterator((phones + decoys)[:n_p], language="en",
                                                   entities=["PHONE_NUMBER"]))
    presidio_rate = 2 * n_p / (time.perf_counter() - started)
    p_found = {i: [(r.entity_type, r.start, r.end) for r in res] for i, res in enumerate(p_notes) if res}

    def prf(tp: int, fp: int, fn: int) -> str:
        return f"{tp / max(1, tp + fp):>10.4f}{tp / max(1, tp + fn):>9.4f}   ({tp}/{fp}/{fn})"

    print(f"corpus: {len(notes):,} notes in {len(pii_corpus.LOCALES)} locales + {len(negatives):,} hard negatives; "
          f"{len(phones):,} Faker phone numbers + {len(decoys):,} decoys in a 'phone' column")
    print(f"{'':40}{'precision':>10}{'recall':>9}   (tp/fp/fn)")
    neg_fp = {e: sum(1 for i in range(len(notes), len(texts)) for x in found.get(i, []) if x[0] == e) for e in ents}
    for e in ents:
        tp, fp, fn = pii_corpus.score(notes, found, e)
        print(f"{'gate ' + e + ' (notes + negatives)':40}{prf(tp, fp + neg_fp[e], fn)}")
    sub = notes[:n_p]
    tp, fp, fn = pii_corpus.score(sub, p_found, "PHONE_NUMBER")
    print(f"{'Presidio PHONE_NUMBER (notes)':40}{prf(tp, fp, fn)}   [first {n_p} notes]")
    for e in ("PERSON", "LOCATION"):
        print(f"{'Presidio ' + e:40}{'n/a':>10}{'n/a':>9}   (needs a spaCy model; "
              f"{'found ' + spacy_model if spacy_model else 'none installed'})")
    tp = len([i for i in phone_hits if i < len(phones)])
    print(f"{'gate PHONE_NUMBER (phone column)':40}{prf(tp, len(phone_hits) - tp, len(phones) - tp)}")
    col = (phones + decoys)[:n_p]
    p_hits = {i for i, res in enumerate(p_phone) if any(r.score >= 0.4 for r in res)}
    tp = len([i for i in p_hits if i < min(len(phones), n_p)])
    print(f"{'Presidio PHONE_NUMBER (phone column)':40}{prf(tp, len(p_hits) - tp, min(len(phones), n_p) - tp)}"
          f"   [first {len(col)} cells]")
    ratio = gate_rate / presidio_rate
    print(f"\ncells/s: gate {gate_rate:,.0f} (PERSON, LOCATION and {len(detector.entities)} pattern entities), "
          f"Presidio {presidio_rate:,.0f} (PHONE_NUMBER only): ratio {ratio:,.0f}x (target >= 100x)")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--presidio-rows", type=int, default=4_000,
                        help="rows Presidio runs on (cells/s extrapolated); 0 = all rows")
    parser.add_argument("--seed", type=int, default=20250101)
    parser.add_argument("--keep", action="store_true", help="keep the generated table in the temp dir")
    parser.add_argument("--entities", choices=["base", "default", "all"], default="base",
                        help="entity set of both sides: the nine base entities (default), the policy's default "
                             "selection, or every pattern entity (issue 18; Presidio then runs every pattern "
                             "recognizer, whatever its language)")
    parser.add_argument("--multilingual", type=int, default=0, metavar="N",
                        help="instead: the labelled multilingual corpus (issue 18), N notes per locale; per-entity "
                             "precision / recall of PERSON, LOCATION, PHONE_NUMBER for the gate and Presidio")
    args = parser.parse_args(argv)
    if args.multilingual:
        return multilingual_bench(args.multilingual, args.seed)

    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_aisec.core.gates.pii import check_pii
    from airflow_aisec.core.policy.sections.pii import PiiPolicy

    workdir = Path(tempfile.gettempdir()) / "aisec-bench-pii"
    workdir.mkdir(exist_ok=True)
    path = workdir / f"pii_{args.rows}_{args.seed}.parquet"
    truth_path = workdir / f"pii_{args.rows}_{args.seed}.truth.npz"
    t0 = time.perf_counter()
    if not (path.exists() and truth_path.exists()):
        data, truth = generate(args.rows, args.seed)
        pq.write_table(pa.table(data), path, row_group_size=131072)
        np.savez(truth_path, **truth)
        del data
    truth = dict(np.load(truth_path))
    planted = sum(int(np.count_nonzero(v)) for v in truth.values())
    cells = args.rows * len(COLUMNS)
    print(f"table: {args.rows:,} rows x {len(COLUMNS)} text columns = {cells:,} cells, {planted:,} planted PII cells "
          f"({planted / cells:.1%}); {path.stat().st_size / 1e6:.1f} MB Parquet (prepared in {time.perf_counter() - t0:.1f}s)")

    entity_set = selected_entities(args.entities)
    policy = PiiPolicy.model_validate({"levels": {"public": {"forbidden": ["*"]}}, "entities": entity_set})
    print(f"entity set: {args.entities} ({len(entity_set)} entities, both sides)")

    # --- timing, interleaved so that load on a shared machine hits both alike --------------------
    # Gate: check_pii end to end; the first call in the process also imports Presidio/spaCy (cold),
    # the next ones are timed like Presidio (after import and set-up). Presidio: its sample in two
    # halves, one after each warm gate run. Each side keeps its better run.
    table = pq.read_table(path, columns=COLUMNS)
    n_sub = args.rows if args.presidio_rows <= 0 else min(args.presidio_rows, args.rows)
    rows = np.sort(np.random.default_rng(args.seed).choice(args.rows, size=n_sub, replace=False))
    halves = [rows[::2], rows[1::2]] if n_sub > 1 else [rows]

    started = time.perf_counter()
    outcome = check_pii(policy, str(path))
    cold_seconds = time.perf_counter() - started
    presidio = PresidioBaseline(entity_set)
    gate_runs, presidio_rates = [], []
    for half in halves:
        started = time.perf_counter()
        outcome = check_pii(policy, str(path))
        gate_runs.append(time.perf_counter() - started)
        presidio_rates.append(presidio.run(table, half))
    gate_seconds = min(gate_runs)
    gate_rate = cells / gate_seconds
    presidio_rate = max(presidio_rates)
    presidio_seconds = sum(presidio.seconds)
    ratio = gate_rate / presidio_rate
    assert outcome.metrics["scan"]["rows_scanned"] == args.rows

    predicted, counts = gate_cells(str(path), policy)
    gate_counts = {c: {e: v["count"] for e, v in outcome.metrics["columns"][c]["entities"].items()} for c in COLUMNS}
    consistent = gate_counts == counts
    presidio_pred = {t: presidio.predictions(t) for t in (0.0, 0.4)}

    gp, gr, *_gfull = score(predicted, truth, None)
    sp, sr, stp, sfp, sfn = score(predicted, truth, rows)
    pp, pr, ptp, pfp, pfn = score(presidio_pred[0.0], truth, rows)
    qp, qr, qtp, qfp, qfn = score(presidio_pred[0.4], truth, rows)

    print()
    print(f"{'':34}{'cells/s':>14}{'precision':>11}{'recall':>9}   (tp/fp/fn)")
    print(f"{'aisec pii gate (full table)':34}{gate_rate:>14,.0f}{gp:>11.4f}{gr:>9.4f}   "
          f"({_gfull[0]}/{_gfull[1]}/{_gfull[2]})")
    print(f"{'aisec pii gate (Presidio rows)':34}{'':>14}{sp:>11.4f}{sr:>9.4f}   ({stp}/{sfp}/{sfn})")
    print(f"{'Presidio BatchAnalyzer (all)':34}{presidio_rate:>14,.0f}{pp:>11.4f}{pr:>9.4f}   ({ptp}/{pfp}/{pfn})")
    print(f"{'Presidio BatchAnalyzer (score>=.4)':34}{'':>14}{qp:>11.4f}{qr:>9.4f}   ({qtp}/{qfp}/{qfn})")
    print()
    print(f"gate: {gate_seconds:.1f}s for {cells:,} cells, end to end (check_pii on the Parquet file: read, sha256, "
          f"full scan; runs {', '.join(f'{x:.1f}s' for x in gate_runs)}); first call in the process "
          f"{cold_seconds:.1f}s incl. importing Presidio/spaCy ({cells / cold_seconds:,.0f} cells/s, "
          f"{cells / cold_seconds / presidio_rate:,.0f}x)")
    print("Presidio timed like the warm gate: analyze_dict only, engine built and imported beforehand "
          f"(runs: {', '.join(f'{r:,.0f}' for r in presidio_rates)} cells/s)")
    if n_sub < args.rows:
        full_estimate = cells / presidio_rate
        print(f"Presidio: ran on {n_sub:,} of {args.rows:,} rows ({n_sub * len(COLUMNS):,} cells) in "
              f"{presidio_seconds:.1f}s; cells/s EXTRAPOLATED to the full table (a full run would take "
              f"~{full_estimate / 60:.0f} min)")
    else:
        print(f"Presidio: full table in {presidio_seconds:.1f}s")
    print(f"gate per-column counts match the per-cell detections: {'yes' if consistent else 'NO'}")
    print()
    ok_speed = ratio >= TARGET_RATIO
    ok_quality = sp >= pp and sr >= pr
    print(f"RATIO gate/Presidio cells/s: {ratio:,.0f}x (target >= {TARGET_RATIO:.0f}x): {'PASS' if ok_speed else 'FAIL'}")
    print(f"precision/recall vs Presidio on the same rows: {sp:.4f}/{sr:.4f} vs {pp:.4f}/{pr:.4f}: "
          f"{'PASS' if ok_quality else 'FAIL'}")
    if not args.keep and not os.environ.get("AISEC_BENCH_KEEP"):
        path.unlink(missing_ok=True)
        truth_path.unlink(missing_ok=True)
    return 0 if ok_speed and ok_quality and consistent else 1


if __name__ == "__main__":
    sys.exit(main())
