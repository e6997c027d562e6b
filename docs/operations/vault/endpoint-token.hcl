# aisec endpoint and llm_redteam gates with vault_secret_path= (the bearer token of the endpoint).
# Replace secret/ and ml/serving/candidate-token with the operator's vault_mount and vault_secret_path.
path "secret/data/ml/serving/candidate-token" {
  capabilities = ["read"]
}
