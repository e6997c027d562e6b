"""Prompt-injection corpus gate throughput and accuracy, side by side with plain Python ``re``.

Data: a generated mixed corpus of ``--mb`` megabytes (default 64 MB, about a minute here; use
``--mb 1024`` for the 1 GB of issue 14, a few minutes for the gate plus the extrapolated baseline), one
document per row of a Parquet table (column ``text``), or as JSONL (``--format jsonl``, field
``text``). Documents mix everyday prose in four languages that uses "ignore", "instructions",
"system", "prompt" in ordinary senses, source code, Markdown with links and badges, HTML snippets,
base64-encoded images and digests, and, in ``--attack-rate`` of them (default 1%), an attack from the
labelled corpus (``tests/helpers/prompt_corpus.py``) buried in ordinary text; 5% also carry one of its
hard benign negatives.

Timed:

* gate: ``check_prompt_injection`` end to end on the file (read, hash, RE2 pre-filter, rules on the
  candidates, findings), ``engine="auto"``;
* baseline: the same gate with ``engine="re"``: the same rules in plain Python ``re`` on every document
  (identical findings: asserted), on the first ``--baseline-mb`` MB (default 4: it does about
  0.1-0.3 MB/s) and extrapolated;
* PII gate, for context: ``check_pii`` (Presidio-backed pattern recognizers, the project's other RE2 fast
  path) on the same bytes (first ``--pii-mb`` MB, default 4, extrapolated; Parquet only).

Printed: documents/s and MB/s of each, the speed-up over the baseline (target >= 10x), the share of
documents the pre-filter hands to Python, and precision / recall on the labelled corpus and its two
held-out sets (see ``tests/core/test_prompt_injection.py``) and on the planted attacks of the bench corpus.

Usage: python bench/bench_prompt_scan.py [--mb N] [--format parquet|jsonl] [--attack-rate R]
       [--baseline-mb N] [--pii-mb N] [--seed S] [--keep]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import prompt_corpus as corpus

_WORDS = ["the", "of", "and", "to", "in", "is", "that", "for", "on", "with", "as", "was", "by", "at", "from", "this", "have", "are", "be", "or", "which", "one", "all", "we", "their", "data", "model", "training", "report", "user", "support", "order", "delivery", "shipping", "account", "review", "product", "team", "meeting", "weather", "city", "price", "service", "customer", "week", "year", "time", "people", "way", "day", "work", "market", "system", "project", "quality", "result", "process", "value", "level", "group", "program", "information", "business"]
_ES = ["el", "la", "de", "que", "y", "en", "los", "del", "se", "las", "por", "un", "para", "con", "no", "una", "su", "al", "lo", "como", "más", "pero", "sus", "le", "ya"]
_FR = ["le", "de", "la", "et", "les", "des", "en", "un", "du", "une", "que", "est", "pour", "qui", "dans", "par", "plus", "pas", "au", "sur", "ne", "se", "ce"]
_DE = ["der", "die", "und", "in", "den", "von", "zu", "das", "mit", "sich", "des", "auf", "für", "ist", "im", "dem", "nicht", "ein", "eine", "als", "auch"]
_CODE = [
    "def handler(event, context):\n    # ignore retries for idempotent calls\n    return process(event['body'])\n",
    "for (let i = 0; i < rows.length; i++) {\n  if (rows[i].ignore) continue;\n  total += rows[i].value;\n}\n",
    "SELECT user_id, COUNT(*) FROM orders WHERE status = 'shipped' GROUP BY user_id ORDER BY 2 DESC;\n",
    "git config --global core.excludesfile ~/.gitignore && git status --ignored\n",
]


def _sentence(rng: random.Random, words: list[str]) -> str:
    n = rng.randint(8, 24)
    return " ".join(rng.choice(words) for _ in range(n)).capitalize() + "."


def make_document(rng: random.Random, attacks: list[str], attack_rate: float,
                  negatives: list[str] = ()) -> tuple[str, bool]:
    kind = rng.random()
    parts: list[str] = []
    if kind < 0.55:
        lang = rng.choice([_WORDS, _WORDS, _WORDS, _ES, _FR, _DE])
        parts = [_sentence(rng, lang) for _ in range(rng.randint(3, 12))]
    elif kind < 0.70:
        parts = ["```", rng.choice(_CODE), "```", _sentence(rng, _WORDS)]
    elif kind < 0.82:
        parts = [(f"See [the docs](https://docs.example.org/guide?page={rng.randint(1, 99)}) and "
                 f"![build](https://img.shields.io/badge/build-passing-green?style=flat)."), _sentence(rng, _WORDS)]
    elif kind < 0.92:
        parts = [f"<div class='card'><p>{_sentence(rng, _WORDS)}</p><!-- card {rng.randint(1, 9999)} --></div>"]
    else:
        blob = base64.b64encode(rng.randbytes(rng.randint(200, 1200))).decode()
        parts = [_sentence(rng, _WORDS), f"![img](data:image/png;base64,{blob})",
                 f"sha256 {rng.randbytes(32).hex()}"]
    if negatives and rng.random() < 0.05:
        # a hard negative: "ignore", "instructions", "system prompt" in ordinary senses
        parts.insert(rng.randint(0, len(parts)), rng.choice(negatives))
    is_attack = rng.random() < attack_rate
    if is_attack:
        parts.insert(rng.randint(0, len(parts)), rng.choice(attacks))
    return "\n".join(parts), is_attack


def generate(path: Path, mb: int, fmt: str, attack_rate: float, seed: int) -> tuple[int, int, list[bool]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    attacks = [s.text for s in corpus.attacks() if s.kind == "txt"]
    negatives = [s.text for s in corpus.benign() if s.kind == "txt"]
    target = mb * 1024 * 1024
    size = 0
    labels: list[bool] = []
    writer = None
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(path, "w", encoding="utf-8")) if fmt == "jsonl" else None
        while size < target:
            docs = []
            for _ in range(20_000):
                text, attack = make_document(rng, attacks, attack_rate, negatives)
                docs.append(text)
                labels.append(attack)
                size += len(text.encode("utf-8"))
                if size >= target:
                    break
            if fmt == "jsonl":
                assert out is not None
                out.writelines(json.dumps({"text": d}) + "\n" for d in docs)
            else:
                table = pa.table({"text": pa.array(docs, type=pa.large_string())})
                if writer is None:
                    writer = stack.enter_context(pq.ParquetWriter(path, table.schema))
                writer.write_table(table, row_group_size=20_000)
    return len(labels), size, labels


def prefix_file(src: Path, dst: Path, fmt: str, rows: int) -> None:
    """The first ``rows`` documents of ``src``, same format."""
    import pyarrow.parquet as pq

    if fmt == "jsonl":
        with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
            for i, line in enumerate(fin):
                if i >= rows:
                    break
                fout.write(line)
        return
    table = pq.read_table(src).slice(0, rows)
    pq.write_table(table, dst, row_group_size=20_000)


def flagged_documents(section, data: Path, fmt: str) -> set[int]:
    """Indices of the documents any rule flags (findings list at most max_positions of them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_aisec.core.gates.prompt_injection._detect import Detector

    detector = Detector(section)
    if fmt == "jsonl":
        with open(data, encoding="utf-8") as fh:
            texts = pa.array([json.loads(line)["text"] for line in fh], type=pa.large_string())
    else:
        texts = pq.read_table(data).column("text").combine_chunks()
    return {i for i, _hits in detector.detect_array(texts)}


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def labelled_scores() -> list[tuple[str, float, float]]:
    from tests.core.test_prompt_injection import precision_recall

    out = []
    for name, items in (("labelled (tuned)", corpus.samples()), ("held-out 1", corpus.holdout()),
                        ("held-out 2 (never tuned)", corpus.holdout2())):
        precision, recall, _, _ = precision_recall(items)
        out.append((name, precision, recall))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--format", choices=("parquet", "jsonl"), default="parquet")
    parser.add_argument("--attack-rate", type=float, default=0.01)
    parser.add_argument("--baseline-mb", type=int, default=None)
    parser.add_argument("--pii-mb", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    from airflow_aisec.core.gates.prompt_injection import check_prompt_injection
    from airflow_aisec.core.policy.sections.prompt_injection import PromptInjectionPolicy

    tmp = Path(tempfile.mkdtemp(prefix="aisec-bench-prompt-"))
    data = tmp / f"corpus.{args.format}"
    print(f"generating {args.mb} MB of mixed documents ({args.format}, attack rate {args.attack_rate}) ...")
    (n_docs, n_bytes, labels), gen_s = timed(lambda: generate(data, args.mb, args.format, args.attack_rate, args.seed))
    print(f"  {n_docs:,} documents, {n_bytes / 1e6:.1f} MB of text in {gen_s:.1f}s -> {data}")
    section = PromptInjectionPolicy()
    mb = n_bytes / 1e6

    gate, gate_s = timed(lambda: check_prompt_injection(section, str(data)))
    cand = gate.metrics["candidates"]
    print(f"\ngate (RE2 pre-filter + rules): {gate_s:.2f}s  {n_docs / gate_s:,.0f} docs/s  {mb / gate_s:,.1f} MB/s"
          f"  (pre-filter handed {cand:,} = {cand / n_docs:.1%} of documents to Python)")

    base_mb = args.baseline_mb if args.baseline_mb is not None else min(args.mb, 4)
    base_rows = n_docs if base_mb >= args.mb else max(1, int(n_docs * base_mb / args.mb))
    base_data = data
    if base_rows < n_docs:
        base_data = tmp / f"baseline.{args.format}"
        prefix_file(data, base_data, args.format, base_rows)
    base_bytes = n_bytes * base_rows / n_docs
    baseline, base_s = timed(lambda: check_prompt_injection(section, str(base_data), engine="re"))
    note = "" if base_rows == n_docs else f" on the first {base_rows:,} documents, extrapolated"
    print(f"baseline (same rules, plain Python re){note}: {base_s:.2f}s  {base_rows / base_s:,.0f} docs/s  "
          f"{base_bytes / 1e6 / base_s:,.1f} MB/s")
    if base_rows == n_docs:
        assert baseline.findings == gate.findings, "the two engines disagree"
        print("  findings identical: yes")
    else:
        prefix_gate = check_prompt_injection(section, str(base_data))
        assert baseline.findings == prefix_gate.findings, "the two engines disagree"
        print("  findings identical on the baseline's documents: yes")
    speedup = (mb / gate_s) / (base_bytes / 1e6 / base_s)
    print(f"  speed-up: {speedup:.1f}x (target >= 10x)")

    if args.pii_mb > 0 and args.format == "parquet":
        from airflow_aisec.core.gates.pii import check_pii
        from airflow_aisec.core.policy import load_policy

        pii_rows = max(1, int(n_docs * min(args.pii_mb, args.mb) / args.mb))
        pii_data = tmp / "pii.parquet"
        prefix_file(data, pii_data, "parquet", pii_rows)
        pii_section = load_policy(str(REPO / "policies" / "strict.yaml")).section("pii")
        check_pii(pii_section, str(pii_data))  # warm-up: Presidio's one-time import
        _, pii_s = timed(lambda: check_pii(pii_section, str(pii_data)))
        pii_mb = n_bytes * pii_rows / n_docs / 1e6
        print(f"PII gate on the same text (first {pii_rows:,} documents): {pii_s:.2f}s  {pii_rows / pii_s:,.0f} "
              f"docs/s  {pii_mb / pii_s:,.1f} MB/s")

    flagged = flagged_documents(section, data, args.format)
    planted = {i for i, a in enumerate(labels) if a}
    tp = len(flagged & planted)
    print(f"\nplanted attacks in the bench corpus: {len(planted):,}; flagged documents: {len(flagged):,}; "
          f"precision {tp / max(1, len(flagged)):.3f}  recall {tp / max(1, len(planted)):.3f}")
    print("labelled corpus (tests/helpers/prompt_corpus.py):")
    for name, precision, recall in labelled_scores():
        print(f"  {name:<26} precision {precision:.3f}  recall {recall:.3f}")
    if args.keep:
        print(f"kept {tmp}")
    else:
        for p in tmp.iterdir():
            p.unlink()
        os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
