"""Airflow notifiers of airflow-aisec (``on_failure_callback`` and friends)."""
