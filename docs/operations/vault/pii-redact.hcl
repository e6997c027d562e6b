# aisec pii gate, hash redaction (PiiRedactOperator with redaction.key.vault_path).
# Replace secret/ and ml/pii/hmac-key with the policy's key.vault_mount and key.vault_path.
path "secret/data/ml/pii/hmac-key" {
  capabilities = ["read"]
}
