#!/bin/sh
# Configure OpenBao (or Vault) for airflow-aisec: KV v2, a Transit signing key, the database secrets
# engine for dynamic PostgreSQL users, and an AppRole with least-privilege policies for Airflow.
#
# Idempotent: safe to run again against a configured server. POSIX sh + the `bao` CLI only (runs in
# the openbao image; with Vault, set BAO=vault). Never prints a secret value.
#
# Required environment:
#   BAO_ADDR, BAO_TOKEN                 server and an admin token (compose: the dev root token)
#   AISEC_VAULT_ROLE_ID                 AppRole role_id Airflow logs in with (its connection login)
#   AISEC_VAULT_SECRET_ID               AppRole secret_id (its connection password)
#   AISEC_FEATURES_DB_PASSWORD          password of the PostgreSQL admin the database engine uses
# Optional (defaults = docker/compose.yaml and policies/strict.yaml):
#   AISEC_KV_MOUNT=secret  AISEC_TRANSIT_MOUNT=transit  AISEC_TRANSIT_KEY=model-signing
#   AISEC_DB_MOUNT=database  AISEC_DB_ROLE=ml-training-readonly  AISEC_DB_NAME=features
#   AISEC_FEATURES_DB_HOST=postgres  AISEC_FEATURES_DB_PORT=5432  AISEC_FEATURES_DB_USER=aisec_vault_admin
#   AISEC_APPROLE=airflow  AISEC_DB_DEFAULT_TTL=5m  AISEC_DB_MAX_TTL=15m
#   AISEC_DEMO_API_KEY                  if set, stored at <kv>/ml/training/api (key api_key)
set -eu

: "${BAO_ADDR:?BAO_ADDR is required}"
: "${BAO_TOKEN:?BAO_TOKEN is required}"
: "${AISEC_VAULT_ROLE_ID:?AISEC_VAULT_ROLE_ID is required}"
: "${AISEC_VAULT_SECRET_ID:?AISEC_VAULT_SECRET_ID is required}"
: "${AISEC_FEATURES_DB_PASSWORD:?AISEC_FEATURES_DB_PASSWORD is required}"
BAO="${BAO:-bao}"
KV="${AISEC_KV_MOUNT:-secret}"
TRANSIT="${AISEC_TRANSIT_MOUNT:-transit}"
TRANSIT_KEY="${AISEC_TRANSIT_KEY:-model-signing}"
DB_MOUNT="${AISEC_DB_MOUNT:-database}"
DB_ROLE="${AISEC_DB_ROLE:-ml-training-readonly}"
DB_NAME="${AISEC_DB_NAME:-features}"
DB_HOST="${AISEC_FEATURES_DB_HOST:-postgres}"
DB_PORT="${AISEC_FEATURES_DB_PORT:-5432}"
DB_USER="${AISEC_FEATURES_DB_USER:-aisec_vault_admin}"
APPROLE="${AISEC_APPROLE:-airflow}"
DB_DEFAULT_TTL="${AISEC_DB_DEFAULT_TTL:-5m}"
DB_MAX_TTL="${AISEC_DB_MAX_TTL:-15m}"
export BAO_ADDR BAO_TOKEN VAULT_ADDR="$BAO_ADDR" VAULT_TOKEN="$BAO_TOKEN"

log() { echo "aisec-openbao-init: $*"; }

# --- wait for the server (bounded) -------------------------------------------------------------
i=0
until "$BAO" status >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -ge 60 ]; then log "server at $BAO_ADDR not ready after 60 s"; exit 1; fi
  sleep 1
done

mounted() { "$BAO" secrets list -format=json | grep -q "\"$1/\""; }
auth_enabled() { "$BAO" auth list -format=json | grep -q "\"$1/\""; }

# --- KV v2 ---------------------------------------------------------------------------------------
if mounted "$KV"; then
  # A dev server mounts secret/ as KV v2 already; upgrading a v1 mount keeps its data.
  "$BAO" kv enable-versioning "$KV/" >/dev/null 2>&1 || true
else
  "$BAO" secrets enable -path="$KV" -version=2 kv >/dev/null
fi
log "KV v2 at $KV/"

# --- Transit signing key (private key never leaves the server) ------------------------------------
mounted "$TRANSIT" || "$BAO" secrets enable -path="$TRANSIT" transit >/dev/null
if ! "$BAO" read "$TRANSIT/keys/$TRANSIT_KEY" >/dev/null 2>&1; then
  "$BAO" write -f "$TRANSIT/keys/$TRANSIT_KEY" type=ecdsa-p256 exportable=false >/dev/null
fi
log "Transit key $TRANSIT/keys/$TRANSIT_KEY (ecdsa-p256)"

# --- database secrets engine: short-lived read-only PostgreSQL users -------------------------------
mounted "$DB_MOUNT" || "$BAO" secrets enable -path="$DB_MOUNT" database >/dev/null
"$BAO" write "$DB_MOUNT/config/$DB_NAME" \
  plugin_name=postgresql-database-plugin \
  connection_url="postgresql://{{username}}:{{password}}@$DB_HOST:$DB_PORT/$DB_NAME?sslmode=disable" \
  username="$DB_USER" password="$AISEC_FEATURES_DB_PASSWORD" \
  allowed_roles="$DB_ROLE" >/dev/null
"$BAO" write "$DB_MOUNT/roles/$DB_ROLE" \
  db_name="$DB_NAME" \
  creation_statements="CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";" \
  default_ttl="$DB_DEFAULT_TTL" max_ttl="$DB_MAX_TTL" >/dev/null
log "database engine $DB_MOUNT/, role $DB_ROLE on $DB_HOST:$DB_PORT/$DB_NAME (ttl $DB_DEFAULT_TTL, max $DB_MAX_TTL)"

# --- policies: what Airflow's tasks may do, nothing more ------------------------------------------
"$BAO" policy write aisec-airflow-secrets - >/dev/null <<EOF
# Read ML pipeline secrets (the secrets gate narrows this further per DAG with its grants).
path "$KV/data/ml/*" { capabilities = ["read"] }
path "$KV/metadata/ml/*" { capabilities = ["read", "list"] }
# Short-lived database users; the task revokes its own leases when it ends (lease id in the URL,
# so only leases of this role can be revoked).
path "$DB_MOUNT/creds/$DB_ROLE" { capabilities = ["read"] }
path "sys/leases/revoke/$DB_MOUNT/creds/$DB_ROLE/*" { capabilities = ["update"] }
EOF
"$BAO" policy write aisec-airflow-signing - >/dev/null <<EOF
# Sign model digests with the Transit key and read its public key to verify; no export, no rotation.
path "$TRANSIT/sign/$TRANSIT_KEY" { capabilities = ["update"] }
path "$TRANSIT/sign/$TRANSIT_KEY/*" { capabilities = ["update"] }
path "$TRANSIT/verify/$TRANSIT_KEY" { capabilities = ["update"] }
path "$TRANSIT/verify/$TRANSIT_KEY/*" { capabilities = ["update"] }
path "$TRANSIT/keys/$TRANSIT_KEY" { capabilities = ["read"] }
path "$TRANSIT/export/public-key/$TRANSIT_KEY" { capabilities = ["read"] }
path "$TRANSIT/export/public-key/$TRANSIT_KEY/*" { capabilities = ["read"] }
EOF
log "policies aisec-airflow-secrets, aisec-airflow-signing"

# --- AppRole for Airflow ---------------------------------------------------------------------------
auth_enabled approle || "$BAO" auth enable approle >/dev/null
"$BAO" write "auth/approle/role/$APPROLE" \
  token_policies="aisec-airflow-secrets,aisec-airflow-signing" \
  token_ttl=1h token_max_ttl=4h secret_id_ttl=0 secret_id_num_uses=0 >/dev/null
"$BAO" write "auth/approle/role/$APPROLE/role-id" role_id="$AISEC_VAULT_ROLE_ID" >/dev/null
if ! "$BAO" write auth/approle/login role_id="$AISEC_VAULT_ROLE_ID" secret_id="$AISEC_VAULT_SECRET_ID" \
    >/dev/null 2>&1; then
  "$BAO" write "auth/approle/role/$APPROLE/custom-secret-id" secret_id="$AISEC_VAULT_SECRET_ID" >/dev/null
fi
# Prove the pair Airflow will use actually logs in.
"$BAO" write auth/approle/login role_id="$AISEC_VAULT_ROLE_ID" secret_id="$AISEC_VAULT_SECRET_ID" >/dev/null
log "AppRole $APPROLE (policies aisec-airflow-secrets, aisec-airflow-signing); login verified"

# --- optional demo secret --------------------------------------------------------------------------
if [ -n "${AISEC_DEMO_API_KEY:-}" ]; then
  "$BAO" kv put -mount="$KV" ml/training/api api_key="$AISEC_DEMO_API_KEY" >/dev/null
  log "demo secret $KV/ml/training/api"
fi
log "done"
