"""Airflow-free core of airflow-aisec: policy evaluation, scanning, signing and metrics.

Nothing in this package imports Airflow; heavy libraries (Great Expectations,
Presidio, model-signing, fairlearn) are imported inside the functions that use them.
"""
