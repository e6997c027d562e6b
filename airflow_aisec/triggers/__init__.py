"""Triggers (run in Airflow's triggerer) used by the provider's deferrable sensors."""
