"""Cost of checking UI results against the audit trail: cached, incremental index vs reading the trail.

Every page of the UI plugin checks each result against the central trail
(:mod:`airflow_aisec.core.trail_index`). Baseline: building the index from scratch (what reading the
whole trail per request would cost). Candidate: the cached index refreshed for one new record
(HEAD, the last indexed record, the new record, and the probe for the next one). Also printed: one
``confirm`` per result (the per-row cost of the overview). Local trail on disk; an S3 trail costs
the same number of requests (a few GETs) instead of file reads.

Target: a refresh costs O(new records), not O(trail): the ratio grows with the trail size.

Usage: python bench/bench_trail_index.py [--records N] [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from airflow_aisec.core.evidence import open_evidence_store
from airflow_aisec.core.trail_index import build_index, clear_cache, trail_index


def _doc(i: int) -> dict:
    return {"schema_version": "1.0", "gate": "drift", "verdict": "pass", "started_at": "t0", "finished_at": "t1",
            "findings": [], "metrics": {"psi_max": 0.01 * (i % 7)},
            "airflow": {"dag_id": f"dag_{i % 40}", "run_id": f"run_{i // 40}", "task_id": "drift_gate",
                        "try_number": 1}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_evidence_store(str(Path(tmp) / "trail"))
        for i in range(args.records):
            store.append(_doc(i))
        full, incremental = [], []
        clear_cache()
        trail_index(store)  # warm the cache once
        for r in range(args.repeats):
            t0 = time.perf_counter()
            build_index(store)
            full.append(time.perf_counter() - t0)
            store.append(_doc(args.records + r))
            t0 = time.perf_counter()
            index = trail_index(store)
            incremental.append(time.perf_counter() - t0)
        docs = [_doc(i) for i in range(min(args.records, 1000))]
        t0 = time.perf_counter()
        for i, doc in enumerate(docs):
            air = doc["airflow"]
            assert index.confirm(doc, dag_id=air["dag_id"], run_id=air["run_id"], task_id=air["task_id"],
                                 try_number=1).verified, i
        per_confirm = (time.perf_counter() - t0) / len(docs)
    base, cand = statistics.median(full), statistics.median(incremental)
    print(f"trail of {args.records} records")
    print(f"baseline  full index build      : {base * 1000:9.2f} ms")
    print(f"candidate cached refresh (+1)   : {cand * 1000:9.2f} ms")
    print(f"ratio baseline / candidate      : {base / cand:9.1f}x")
    print(f"confirm one result              : {per_confirm * 1e6:9.1f} us")


if __name__ == "__main__":
    main()
