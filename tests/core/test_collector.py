"""core/collector.py: the collector is paused for a check and back as it was, and the objects the
check made are aged without a walk over them."""

from __future__ import annotations

import gc

from airflow_aisec.core.collector import collector_paused


def test_pause_restores_the_collector_and_ages_what_was_made():
    assert gc.isenabled() and gc.get_freeze_count() == 0
    with collector_paused():
        assert not gc.isenabled()
        kept = [{"feature": i} for i in range(50_000)]
        assert gc.get_count()[0] > 1_000  # young: a collection would walk them
    assert gc.isenabled() and gc.get_freeze_count() == 0  # nothing left frozen
    assert gc.get_count()[0] < 1_000  # aged into the oldest generation, not walked
    assert len(kept) == 50_000


def test_nested_pauses_and_a_disabled_collector_are_left_alone():
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # it was off before: still off
    finally:
        gc.enable()
    with collector_paused(), collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_objects_frozen_by_someone_else_stay_frozen():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with collector_paused():
            _ = [[] for _ in range(1_000)]
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
