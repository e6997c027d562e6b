# aisec signing gate, verifying side (ModelVerifyGateOperator, ModelSignatureSensor,
# aisec model verify --transit-key): the public key only; verification happens in the worker.
path "transit/keys/model-signing" {
  capabilities = ["read"]
}
