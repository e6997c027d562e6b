"""airflow-aisec: policy-driven security gates for AI/ML pipelines on Apache Airflow.

Importing this package is cheap and never imports Airflow: operators live in
:mod:`airflow_aisec.operators`, the Airflow-free core in :mod:`airflow_aisec.core`.
"""

__version__ = "0.1.0"
