# aisec signing gate, signing side (ModelSignOperator, aisec model sign --transit-key).
# Replace transit/ and model-signing with the Transit mount and key of the policy's trusted_keys.

# Sign a sha256 digest (prehashed) with one key version; the private key never leaves Vault.
path "transit/sign/model-signing" {
  capabilities = ["update"]
}

# Read the key's type, versions and public keys (the bundle names the key version it was signed with).
path "transit/keys/model-signing" {
  capabilities = ["read"]
}
