# Vault / OpenBao policy for the keyward daemon: KV v2 secrets under secret/app/.
# Narrow the paths to the secrets keyward rotates.
#
# The secret's own path: keyward reads it and, at finish, writes the tested value as the new
# latest version (check-and-set). It never destroys or rewrites versions there. "update" on
# metadata is needed once per secret rotated by an earlier keyward release, to remove the
# stages it kept in custom_metadata; "list" lets `keyward discover vault` walk the mount.
path "secret/data/app/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/app/*" {
  capabilities = ["read", "update", "list"]
}
path "secret/metadata/" {
  capabilities = ["list"]
}
# The staging area, keyward's alone: the pending value waits here until it is tested, so no
# reader of secret/app/* ever sees it ([rotation.stores.vault-kv] staging_mount and
# staging_path move it; the path below is the default staging_path/<mount>/<secret path>).
# Grant these paths to nothing else.
path "secret/data/keyward-staging/secret/app/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/keyward-staging/secret/app/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/destroy/keyward-staging/secret/app/*" {
  capabilities = ["update"]
}
# tell an expired token from a missing capability
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
