"""The ``model_scan`` policy section (schema only; the engine is :mod:`airflow_aisec.core.gates.model_scan`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from airflow_aisec.core.policy.base import GateSection

#: Default cap on a compressed pickle's decompressed size (bomb guard).
DEFAULT_MAX_DECOMPRESSED_BYTES = 8 * 1024 ** 3


class ModelScanPolicy(GateSection):
    """Policy section ``model_scan``.

    Attributes:
        forbid_pickle: Any pickle-based file is a finding (allow only safetensors, ONNX, JSON...).
        allowed_extensions: If set, every file must have one of these extensions (``""`` allows
            files without one).
        scanners: Third-party scanners to run besides the built-in analysis.
        allowed_globals: If set, pickle imports must match one of these ``module.name`` globs
            (e.g. ``sklearn.*``); others are ``model_scan.unlisted_import``.
        fail_on_scanner_error: Make a file that a third-party scanner did not scan (an error, a
            crash or a skip) a ``model_scan.scanner_error`` finding. Either way the scanner's partial
            output for that file is discarded, the file is listed in the result's ``not_scanned``
            metric and the plain output, and the built-in analysis covers it.
        max_files: Largest number of files scanned in one model.
        max_decompressed_bytes: Cap on a compressed pickle's decompressed size (bomb guard).
    """

    forbid_pickle: bool = False
    allowed_extensions: list[str] | None = None
    scanners: list[Literal["picklescan", "modelscan"]] = Field(
        default_factory=lambda: ["picklescan", "modelscan"]
    )
    allowed_globals: list[str] | None = None
    fail_on_scanner_error: bool = False
    max_files: int = Field(default=100_000, gt=0)
    max_decompressed_bytes: int = Field(default=DEFAULT_MAX_DECOMPRESSED_BYTES, gt=0)

    @field_validator("allowed_extensions")
    @classmethod
    def _normalise_extensions(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        out = []
        for ext in value:
            ext = ext.strip().lower()
            if ext and not ext.startswith("."):
                ext = "." + ext
            out.append(ext)
        return sorted(set(out))

    @field_validator("scanners")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return sorted(set(value))


__all__ = ["DEFAULT_MAX_DECOMPRESSED_BYTES", "ModelScanPolicy"]
