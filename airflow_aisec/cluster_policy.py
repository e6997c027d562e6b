"""Airflow cluster policy (``airflow.policy`` entry point). Rules land with the platform issue."""
