"""The ``model_scan`` gate: unsafe model files (pickle payloads, forbidden formats), never loading a model.

:func:`scan_model` is the entry point (:mod:`.check`); the built-in static analysis lives in
``_streams`` (byte streams), ``_pickle_analysis`` (symbolic pickle machine), ``_formats``
(content sniffing), ``_file_analysis`` (files and zip members), ``_denylist`` and ``_scanners``
(picklescan / modelscan adapters). Only the standard library is imported here.
"""

from airflow_aisec.core.gates.model_scan._denylist import is_dangerous_import
from airflow_aisec.core.gates.model_scan._file_analysis import analyse_file
from airflow_aisec.core.gates.model_scan._formats import (
    NON_PICKLE_EXTENSIONS,
    PICKLE_CAPABLE_EXTENSIONS,
    PICKLE_EXTENSIONS,
    FileAnalysis,
)
from airflow_aisec.core.gates.model_scan.check import GATE, scan_model

__all__ = [
    "GATE",
    "NON_PICKLE_EXTENSIONS",
    "PICKLE_CAPABLE_EXTENSIONS",
    "PICKLE_EXTENSIONS",
    "FileAnalysis",
    "analyse_file",
    "is_dangerous_import",
    "scan_model",
]
