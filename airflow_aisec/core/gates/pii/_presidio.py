"""Presidio outside the pattern detector: loading its recognizers, silencing its loggers, and the optional
NLP scanner.

Presidio's package ``__init__`` imports its NLP engines, and with them spaCy and torch (seconds of start-up),
although the pattern recognizers the detector uses need neither. :func:`pattern_recognizers` loads those
recognizer modules alone; the NLP scanner finds PERSON / LOCATION with a spaCy model the user installed
(``pii.nlp``), and only it imports spaCy and the rest of Presidio. Models are never downloaded.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.pii._matches import Match
from airflow_aisec.exceptions import ConfigurationError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_aisec.core.policy.sections.pii import NlpSettings

_ROOT = "presidio_analyzer"
_RECOGNIZERS = "presidio_analyzer.predefined_recognizers"
_NLP_ENGINE = "presidio_analyzer.nlp_engine"
#: What the pattern recognizer modules import from the package root, in the order its ``__init__`` has them.
_ROOT_NAMES = (("analysis_explanation", "AnalysisExplanation"), ("recognizer_result", "RecognizerResult"),
               ("entity_recognizer", "EntityRecognizer"), ("local_recognizer", "LocalRecognizer"),
               ("pattern", "Pattern"), ("pattern_recognizer", "PatternRecognizer"))
_DEFERRED = "__aisec_deferred_init__"
_LOCK = threading.RLock()
#: Recognizer class name -> its module, for the stand-in packages (:func:`pattern_recognizers`).
_WHERE: dict[str, str] = {}


class NlpArtifactsNotLoaded:
    """Stands for ``presidio_analyzer.nlp_engine.NlpArtifacts`` while the NLP engine is not imported: the phone
    and IBAN recognizer modules name it only in a default-``None`` annotation. :func:`load_presidio` puts the
    real class back in their namespace."""


def _defer(name: str, resolve: Callable[[str], Any] | None = None) -> ModuleType:
    """Put package ``name`` in ``sys.modules`` without running its ``__init__``; its submodules import as
    usual. A name it lacks is looked up with ``resolve``, else the whole of Presidio is imported the usual way
    (:func:`load_presidio`): code asking for more afterwards (``from presidio_analyzer import AnalyzerEngine``)
    gets what a normal import gives."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"{name} is not installed (pip install 'airflow-aisec[pii]')", name=name)
    module = importlib.util.module_from_spec(spec)

    def __getattr__(attr: str) -> Any:
        if attr.startswith("__") and attr != "__all__":  # probes (copy, inspect, pytest) leave it deferred
            raise AttributeError(attr)
        with _LOCK:
            if sys.modules.get(name) is module:
                found = resolve(attr) if resolve is not None else None
                if found is not None:
                    setattr(module, attr, found)
                    return found
                load_presidio()
        return getattr(importlib.import_module(name), attr)

    module.__getattr__ = __getattr__  # PEP 562: consulted for names the module does not have
    setattr(module, _DEFERRED, True)
    sys.modules[name] = module
    return module


def _recognizer_modules(package: ModuleType) -> dict[str, str]:
    """Recognizer class name -> the module it is imported from, read from the ``from ... import`` lines of a
    package's ``__init__.py`` (not executed: ``predefined_recognizers``' imports the NLP engines)."""
    tree = ast.parse(Path(package.__spec__.origin).read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level in (0, 1):
            module = f"{package.__name__}.{node.module}" if node.level == 1 else node.module
            if module.startswith(_RECOGNIZERS + "."):
                found.update({a.asname or a.name: module for a in node.names})
    return found


def pattern_recognizers() -> Any:
    """``presidio_analyzer.predefined_recognizers``; when Presidio is not imported yet, a stand-in whose
    recognizer classes import without Presidio's NLP engines (spaCy, torch, transformers).

    The classes are Presidio's own, from their own modules: only the three package ``__init__`` files that
    import every engine are deferred (:func:`_defer`). After this, ``from presidio_analyzer import Pattern,
    PatternRecognizer`` is cheap too.
    """
    with _LOCK:
        loaded = sys.modules.get(_RECOGNIZERS)
        if loaded is not None:
            return loaded
        if _ROOT not in sys.modules:
            root = _defer(_ROOT)
            logging.getLogger("presidio-analyzer").addHandler(logging.NullHandler())  # as its __init__ does
            for module, name in _ROOT_NAMES:
                setattr(root, name, getattr(importlib.import_module(f"{_ROOT}.{module}"), name))
        if _NLP_ENGINE not in sys.modules:
            _defer(_NLP_ENGINE).NlpArtifacts = NlpArtifactsNotLoaded
        package = _defer(_RECOGNIZERS, _resolve)
        _WHERE.update(_recognizer_modules(package))
        return package


def _resolve(name: str) -> Any:
    module = _WHERE.get(name)
    if not module:
        return None
    _defer_parents(module)
    loaded = sys.modules.get(module)
    if loaded is None:
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.submodule_search_locations is not None:
            loaded = _defer(module, _resolve)
    if getattr(loaded, _DEFERRED, False):  # a package re-exporting the class: find the module defining it
        deeper = _recognizer_modules(loaded).get(name)
        if deeper is None or deeper == module:
            return None
        _WHERE[name] = deeper
        return _resolve(name)
    return getattr(importlib.import_module(module), name)


def _defer_parents(module: str) -> None:
    """Defer the packages between ``predefined_recognizers`` and a recognizer module: their ``__init__`` files
    import every recognizer of the group (``us`` has 15, ``generic`` the URL one, which compiles a huge regex
    at import, and the e-mail one, which imports tldextract and requests)."""
    parts = module.split(".")
    for end in range(_RECOGNIZERS.count(".") + 2, len(parts)):
        package = ".".join(parts[:end])
        if package not in sys.modules:
            _defer(package, _resolve)


@contextlib.contextmanager
def unchecked_patterns() -> Iterator[None]:
    """Recognizers built (and their modules imported) without Presidio's regex check.

    ``Pattern.__init__`` compiles its regex only to check it, with the ``regex`` module's pure-Python parser:
    ~12 ms CPU for the recognizers of a default detector, most of it in class bodies at import. The detector
    compiles every pattern itself (with the recognizer's flags) when a candidate cell first needs it, which
    fails on a bad one all the same, so a scan that never needs a pattern never parses it.
    """
    with _LOCK:
        pattern_recognizers()
        cls = sys.modules[f"{_ROOT}.pattern"].Pattern
        name = "_Pattern__validate_regex"
        check = cls.__dict__.get(name)
        if not isinstance(check, staticmethod):  # another Presidio: leave it alone
            yield
            return
        setattr(cls, name, staticmethod(_unchecked))
        try:
            yield
        finally:
            setattr(cls, name, check)


def _unchecked(pattern: str) -> None:
    return None


def class_constant(class_name: str, attr: str) -> Any:
    """A literal class attribute of a recognizer (``UrlRecognizer.BASE_URL_REGEX``), read from its source when
    its module is not imported yet: importing it may cost more than the scan (it compiles its patterns)."""
    with _LOCK:
        pattern_recognizers()
        module = _WHERE.get(class_name)
        spec = None
        if module and module not in sys.modules:
            _defer_parents(module)
            spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin:
            tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
            for node in tree.body:
                if isinstance(node, ast.ClassDef) and node.name == class_name:
                    for stmt in node.body:
                        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                                and isinstance(stmt.targets[0], ast.Name) and stmt.targets[0].id == attr):
                            with contextlib.suppress(ValueError):
                                return ast.literal_eval(stmt.value)
        return getattr(getattr(pattern_recognizers(), class_name), attr)  # not a literal: import the class


def load_presidio() -> ModuleType:
    """The whole of ``presidio_analyzer``, imported the usual way; the recognizer modules
    :func:`pattern_recognizers` loaded are kept (same classes)."""
    with _LOCK:
        for name in [k for k, m in sys.modules.items() if k.split(".")[0] == _ROOT and getattr(m, _DEFERRED, False)]:
            del sys.modules[name]
        root = importlib.import_module(_ROOT)
        real = importlib.import_module(_NLP_ENGINE).NlpArtifacts
        for key, module in list(sys.modules.items()):
            if not key.startswith(_ROOT + ".") or module is None:
                continue
            parent, _, child = key.rpartition(".")
            holder = sys.modules.get(parent)
            if holder is not None and child not in holder.__dict__:  # loaded under the stand-in parent
                setattr(holder, child, module)
            if module.__dict__.get("NlpArtifacts") is NlpArtifactsNotLoaded:
                module.NlpArtifacts = real
        return root


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
        load_presidio()
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
