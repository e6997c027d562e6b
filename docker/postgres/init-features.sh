#!/bin/sh
# PostgreSQL first-start hook (/docker-entrypoint-initdb.d): the "features" database the training
# pipeline reads, and the admin role OpenBao's database engine uses to create short-lived users
# (see docker/openbao/init.sh). Runs once, on an empty data directory.
set -eu
: "${AISEC_FEATURES_DB_PASSWORD:?AISEC_FEATURES_DB_PASSWORD is required}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v admin_password="$AISEC_FEATURES_DB_PASSWORD" <<'SQL'
CREATE ROLE aisec_vault_admin WITH LOGIN CREATEROLE PASSWORD :'admin_password';
CREATE DATABASE features OWNER aisec_vault_admin;
SQL
