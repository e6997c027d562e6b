"""Helpers shared by the test modules (import them from here, never from ``tests.conftest``).

* ``env``       the session's throw-away Airflow home (``prepare_session_environment``), ``REPO``,
                ``VENV_BIN``, ``patched_environ``
* ``net``       ``free_port``, ``wait_for_http``, ``require_listening``
* ``services``  OpenBao (``BaoServer``, ``start_bao``, ``running_bao``), moto S3 (``S3Server``,
                ``running_moto``), ``POSTGRES_DSN``, ``REDIS_URL``
* ``vault``     OpenBao set-up: ``vault_conn_json``, ``enable_engine``, ``seed_kv``, ``limited_token``,
                ``postgres_database_engine``, ``example_pipeline_vault``
* ``airflow``   ``migrate_airflow_db``, ``run_dag_file``/``DagRunOutcome``, ``task_context``,
                ``assert_retryable_error``
* ``cli``       ``run_aisec`` (the console script in a subprocess)
* ``no_io``     ``forbid_io`` (no filesystem/network/subprocess access in a block), ``record_io``

``tests/conftest.py`` only declares fixtures as thin wrappers around these.
"""
