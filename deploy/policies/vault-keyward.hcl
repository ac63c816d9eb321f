# Vault / OpenBao policy for the keyward daemon: KV v2 secrets under secret/app/.
# keyward records the stages in custom_metadata (metadata update) and destroys a rolled-back
# pending version (destroy). Narrow the paths to the secrets keyward rotates.
path "secret/data/app/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/app/*" {
  capabilities = ["create", "read", "update", "list"]
}
path "secret/destroy/app/*" {
  capabilities = ["update"]
}
# tell an expired token from a missing capability
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
