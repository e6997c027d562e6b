"""Presidio outside the pattern detector: silencing its loggers, and the optional NLP scanner.

The NLP scanner finds PERSON / LOCATION with a spaCy model the user installed
(``pii.nlp``); models are never downloaded. spaCy and Presidio are imported when
a scanner is built.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_aisec.core.gates.pii._matches import Match
from airflow_aisec.exceptions import ConfigurationError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_aisec.core.policy.sections.pii import NlpSettings


@contextlib.contextmanager
def quiet_presidio() -> Iterator[None]:
    """Silence Presidio's and tldextract's loggers while scanning: some of their messages quote the text."""
    loggers = [logging.getLogger(n) for n in ("presidio-analyzer", "tldextract", "phonenumbers")]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, old):
            lg.setLevel(level)


class NlpScanner:
    """PERSON / LOCATION through Presidio's NLP engine with a user-supplied spaCy model (never downloaded)."""

    def __init__(self, settings: NlpSettings) -> None:
        self.settings = settings
        model = settings.model or ""
        import spacy

        if not (spacy.util.is_package(model) or Path(model).is_dir()):
            raise ConfigurationError(
                f"pii.nlp.model '{model}' is not an installed spaCy package or model directory "
                "(models are never downloaded; install one or disable pii.nlp)"
            )
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        try:
            engine = NlpEngineProvider(nlp_configuration={
                "nlp_engine_name": settings.engine,
                "models": [{"lang_code": "en", "model_name": model}],
            }).create_engine()
        except (OSError, ValueError, ImportError) as exc:
            raise ConfigurationError(f"pii.nlp.model '{model}' could not be loaded ({type(exc).__name__})") from None
        self.analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
        self.entities = list(settings.entities)

    def detect_text(self, text: str) -> list[Match]:
        results = self.analyzer.analyze(text=text, language="en", entities=self.entities,
                                        score_threshold=self.settings.min_score)
        return [Match(r.entity_type, r.start, r.end, float(r.score)) for r in results
                if r.entity_type in self.entities]

    def detect_array(self, strings: pa.Array) -> Iterator[tuple[int, str, list[Match]]]:
        for i, text in enumerate(strings.to_pylist()):
            if text and any(c.isalpha() for c in text):
                matches = self.detect_text(text)
                if matches:
                    yield i, text, matches
