#!/bin/sh
# An app start script that fetches its secrets with coffer-client
# (docs/client.md, "Boot-time recipes"). Servers, the pinned server key and
# the key file come from /etc/coffer/client.toml (examples/client.toml) or
# COFFER_* variables.
set -eu

# The cache of the last good shard, used when no server answers at boot,
# lives in a directory of the app's own, created on first run. The
# remembered serial needs no flag: coffer-client keeps it in its default
# state directory, which it creates (docs/client.md, "Freshness").
app_dir="${COFFER_APP_DIR:-/var/lib/coffer-app}"
mkdir -p -m 0700 "$app_dir"

# Fetch once, into a variable, then load it into this shell. `eval` of
# the env format is safe: every value is single-quoted for sh.
# Retry for up to 60 s at boot; on failure, say why and stop.
status=0
secrets="$(coffer-client get --format env --prefix APP_ --wait 60s --max-age 24h \
    --cache "$app_dir/cache")" || status=$?
if [ "$status" -ne 0 ]; then
    case $status in
        2) echo "startup: coffer-client usage or configuration error" >&2 ;;
        3) echo "startup: no coffer server answered in time" >&2 ;;
        4) echo "startup: coffer authentication failed (pinned key, or unknown client)" >&2 ;;
        *) echo "startup: coffer-client failed ($status)" >&2 ;;
    esac
    exit "$status"
fi
eval "$secrets"
unset secrets

# One value on its own, exactly its bytes (no newline added):
#   PGPASSWORD="$(coffer-client get --format raw db.password)"

# Replace this shell with the app; its environment holds the secrets.
# APP_COMMAND names another program (the tests' stand-in).
exec "${APP_COMMAND:-/usr/local/bin/app}" "$@"
