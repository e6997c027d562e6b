# aisec secrets gate (VaultSecretsGateOperator, vault_secrets(), vault_database_credentials()).
# Replace secret/ with the policy's secrets.kv_mount, ml/training with the folders the policy's
# grants name, and database/ + ml-training-readonly with secrets.database.mount and the roles granted.

# Read a granted KV v2 secret; the same capability lets the gate ask Vault to wrap the read
# (X-Vault-Wrap-TTL), so the value itself never reaches the gate task.
path "secret/data/ml/training/*" {
  capabilities = ["read"]
}

# Expand a folder grant ("ml/training/*") by listing it; nothing is read.
path "secret/metadata/ml/training/*" {
  capabilities = ["list"]
}

# Check a database role grant without issuing credentials. Vault's default policy also grants this
# and sys/wrapping/unwrap; they are listed for tokens created without it (no_default_policy).
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# The consumer opens the hand-off: it looks the wrapping token up first (sys/wrapping/lookup is
# unauthenticated: no rule needed), then unwraps it once.
path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}

# Dynamic database users for vault_database_credentials(), revoked when the task ends (lease id
# in the URL: only leases of this role can be revoked).
path "database/creds/ml-training-readonly" {
  capabilities = ["read"]
}
path "sys/leases/revoke/database/creds/ml-training-readonly/*" {
  capabilities = ["update"]
}
