"""Sphinx configuration of the airflow-aisec documentation (built by scripts/docs.sh, offline)."""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

from airflow_aisec import __version__

project = "airflow-aisec"
author = "airflow-aisec contributors"
copyright = "airflow-aisec contributors"
version = release = __version__

extensions = ["myst_parser", "aisec_cli", "aisec_schema", "aisec_settings"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "examples", "operations/vault", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Offline: no intersphinx, no remote images; every warning is an error (scripts/docs.sh: -W -n).
nitpicky = True
html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"airflow-aisec {release}"
html_theme_options = {"fixed_sidebar": True, "page_width": "1320px", "body_max_width": "none"}
pygments_style = "sphinx"
