"""Helpers shared by the test modules (import them from here, never from ``tests.conftest``).

Environment and processes

* ``env``           the session's throw-away Airflow home (``prepare_session_environment``), ``REPO``,
                    ``VENV_BIN``, ``patched_environ``, ``reload_settings``
* ``net``           ``free_port``, ``wait_for_http``, ``require_listening``
* ``no_io``         ``forbid_io`` (no filesystem/network/subprocess access in a block), ``record_io``
* ``calls``         ``count_calls`` (how often a module-level function ran during a test)
* ``cli``           ``run_aisec`` (the console script in a subprocess)
* ``airflow``       ``migrate_airflow_db``, ``run_dag_file``/``DagRunOutcome``, ``task_context``,
                    ``assert_retryable_error``
* ``lineage``       ``run_dag_with_lineage`` (real OpenLineage provider, file transport)
* ``cluster``       ``AirflowCluster``: a real Airflow deployment on loopback (Celery run, load tests)

Services

* ``services``      OpenBao (``BaoServer``, ``start_bao``, ``running_bao``), moto S3 (``S3Server``,
                    ``running_moto``), ``POSTGRES_DSN``, ``REDIS_URL``
* ``vault``         OpenBao set-up: ``vault_conn_json``, ``enable_engine``, ``seed_kv``, ``limited_token``,
                    ``postgres_database_engine``, ``example_pipeline_vault``, ``open_handoff``
* ``buckets``       S3 buckets in a compliant and a non-compliant posture (``compliant_bucket``, ...)
* ``moto_tls``      ``moto_server`` evaluating bucket policies as AWS does (storage posture tests)
* ``serving``       a CA and certificates (``make_pki``) and serving endpoints (``running_serving``)
* ``serving_app``   the insecure and the hardened model-serving API behind ``serving``
* ``endpoint_setup``  ``write_endpoint_setup``: what the endpoint gate's CLI and operator tests probe
* ``model_server``  a rule-based chat model behind an OpenAI-compatible API (``running_model_server``)
* ``webhook_sink``  an HTTP server recording every POST (``running_sink``)
* ``trickle``       a server answering a byte at a time (``running_trickler``: headers, body, TLS handshake)

Data, models and keys

* ``signing_keys``  ``write_pem_keypair``: a fresh PEM signing key pair on disk
* ``provenance``    signed-provenance set-up: key pairs, datasets, a source + pii + signing policy
* ``model_corpus``  real model artefacts, benign and malicious, made by the real libraries
* ``pii_corpus``    a labelled multilingual PII corpus (phones, decoys, free-text notes)
* ``prompt_corpus`` a labelled prompt-injection corpus (attacks and hard benign negatives)
* ``regex_sampler`` seeded random strings matching a regular expression
* ``partitions``    partitioned test data for the mapped / Spark gates
* ``wide_tables``   ``write_wide_drift_case``: 1,500 drifting features x 5 rows (bounded results)
* ``pod_dags``      DAG files with insecure and hardened training pods, and their policy
* ``sarif``         SARIF 2.1.0 and JUnit XML schema validation (``assert_valid_sarif``, ``junit_errors``)

``tests/conftest.py`` only declares fixtures as thin wrappers around these.
"""
