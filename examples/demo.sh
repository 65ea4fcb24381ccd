#!/usr/bin/env bash
# The whole job end to end, as `make demo` runs it: make keys, seal the
# example definition for them, start coffer-server on 127.0.0.1 with a fresh
# data directory, and fetch each client's secrets with coffer-client.
# Everything lives in a temporary directory that is removed at the end.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=${BIN:-$here/../bin}
work=$(mktemp -d "${TMPDIR:-/tmp}/coffer-demo.XXXXXX")
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

step "keys (each secret key file is created 0600; only public keys are printed)"
author_pub=$("$bin/coffer-companion" keygen --author -o "$work/author.key")
server_pub=$("$bin/coffer-companion" keygen -o "$work/server.key")
web_pub=$("$bin/coffer-companion" keygen -o "$work/web.key")
worker1_pub=$("$bin/coffer-companion" keygen -o "$work/worker-1.key")
worker2_pub=$("$bin/coffer-companion" keygen -o "$work/worker-2.key")
printf 'author    %s\nserver    %s\nweb       %s\nworker-1  %s\nworker-2  %s\n' \
	"$author_pub" "$server_pub" "$web_pub" "$worker1_pub" "$worker2_pub"

step "the server's sealing key (X25519 + ML-KEM-768): what the author seals to"
"$bin/coffer-companion" pubkey --sealing "$work/server.key" >"$work/server.sealing"
head -n 2 "$work/server.sealing"
echo "(and one cofferseal1 line of $(tail -n 1 "$work/server.sealing" | wc -c) characters)"

step "definition: examples/secrets.toml with this demo's client keys"
sed -e "s/cofferpk1cyirwsqhinxphrc4gz4keh56bugjn44jn27fvqvy23j64ejsk4eoscpmtm/$web_pub/" \
	-e "s/cofferpk13chnnaupssultpkx6d7o2szjm67hncuxtgm7naqphdoqx54qavwxzrwwje/$worker1_pub/" \
	-e "s/cofferpk12pfcvpte5qryuysjzakpcvz33azntv26jpcw7jtbowp64tn55mn5osoxwy/$worker2_pub/" \
	"$here/secrets.toml" >"$work/secrets.toml"
"$bin/coffer-companion" check "$work/secrets.toml"

step "sign and seal it for the server, then inspect the envelope (no values shown)"
"$bin/coffer-companion" seal --key "$work/author.key" --server-key "$work/server.sealing" \
	-o "$work/secrets.sealed" "$work/secrets.toml"
"$bin/coffer-companion" inspect --key "$work/author.key" --server-key "$work/server.sealing" "$work/secrets.sealed"

step "start coffer-server on 127.0.0.1 (a free port) with a fresh data directory"
"$bin/coffer-server" serve --key "$work/server.key" --data-dir "$work/data" \
	--definition "$work/secrets.sealed" --trusted "$author_pub" \
	--listen 127.0.0.1:0 2>"$work/server.log" &
server_pid=$!
addr=
for _ in $(seq 1 100); do
	addr=$(sed -n 's/.*msg=listening addr=\([0-9.:]*\).*/\1/p' "$work/server.log" | head -n 1)
	[ -n "$addr" ] && break
	kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
	sleep 0.1
done
[ -n "$addr" ] || { echo "coffer-server did not start" >&2; cat "$work/server.log" >&2; exit 1; }
echo "listening on $addr"

client() {
	local name=$1; shift
	"$bin/coffer-client" "$1" --server "$addr" --server-key "$server_pub" --key "$work/$name.key" --wait 10s "${@:2}"
}

step "web fetches its shard as shell exports"
client web get --format env

step "worker-1 fetches two values as JSON (typed: a local time stays local)"
client worker-1 get --format json nightly_run concurrency

step "worker-2 runs a program with its secrets in the environment (exec)"
client worker-2 exec --prefix APP_ -- sh -c 'echo "APP_CONCURRENCY=$APP_CONCURRENCY, APP_QUEUE_URL has ${#APP_QUEUE_URL} characters"'

step "server log (one line per event; no values)"
cat "$work/server.log"
echo
echo "demo finished: keys, sealing, server and client fetches all worked"
