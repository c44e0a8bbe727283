#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
#
# test-server-admin.sh PIPERMESH-SERVER
#
# Runs the admin commands of pipermesh-server against a temporary --db: account
# create (and its duplicate), enroll-key create (the key alone on stdout, TTL
# parsing), device list (text and JSON that parses), device revoke of an
# unknown id (exit 1), usage errors (exit 2), and serve's refusals
# (exit 1). Checks the database file is 0600 in a 0700 folder. Exits 77 (skip)
# without python3, which checks the JSON.

set -u

server=${1:?usage: test-server-admin.sh PIPERMESH-SERVER}

if ! command -v python3 >/dev/null 2>&1; then
  echo "SKIP: python3 is needed to check the JSON output"
  exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pm-server-admin.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
db="$tmp/state/server.db"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# expect_status WANT COMMAND...: runs COMMAND with stdout/stderr to files.
expect_status() {
  want=$1
  shift
  "$@" >"$tmp/out" 2>"$tmp/err"
  got=$?
  if [ "$got" -ne "$want" ]; then
    echo "--- stdout" >&2; cat "$tmp/out" >&2
    echo "--- stderr" >&2; cat "$tmp/err" >&2
    fail "'$*' exited $got, expected $want"
  fi
}

# Accounts.
expect_status 0 "$server" --db "$db" account create alice
grep -q '^Created account “alice” (acc_[0-9a-f]\{32\})\.$' "$tmp/out" || fail "account create output: $(cat "$tmp/out")"
expect_status 1 "$server" --db "$db" account create alice
grep -q 'already exists' "$tmp/err" || fail "duplicate account message: $(cat "$tmp/err")"
# --db also works after the command.
expect_status 0 "$server" account create bob --db "$db"
expect_status 2 "$server" --db "$db" account create
expect_status 2 "$server" --db "$db" account create a b

[ "$(stat -c %a "$db")" = 600 ] || fail "database mode is $(stat -c %a "$db"), not 600"
[ "$(stat -c %a "$tmp/state")" = 700 ] || fail "database folder mode is $(stat -c %a "$tmp/state"), not 700"

# Enrollment keys: the key alone on stdout.
expect_status 0 "$server" --db "$db" enroll-key create alice --ttl 7d --reusable
key=$(cat "$tmp/out")
case $key in
  pmek_???????????????????????????????????????????) ;;
  *) fail "enroll-key create printed “$key”, not one key" ;;
esac
grep -q 'reusable' "$tmp/err" || fail "enroll-key create did not say the key is reusable"
expect_status 0 "$server" --db "$db" enroll-key create alice --ttl 1h30m
[ "$(cat "$tmp/out")" != "$key" ] || fail "two keys are the same"
expect_status 1 "$server" --db "$db" enroll-key create nobody
expect_status 2 "$server" --db "$db" enroll-key create alice --ttl 5x
expect_status 2 "$server" --db "$db" enroll-key create alice --ttl 0s
expect_status 2 "$server" --db "$db" enroll-key create alice --ttl 400d
# The key itself is not in the database, only its hash.
if grep -q "$key" "$db" "$db-wal" 2>/dev/null; then
  fail "the enrollment key is stored in clear"
fi

# Devices.
expect_status 0 "$server" --db "$db" device list alice
grep -q 'has no devices' "$tmp/out" || fail "device list: $(cat "$tmp/out")"
expect_status 0 "$server" --db "$db" device list alice --json
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d == [], d' "$tmp/out" \
  || fail "device list --json did not print an empty JSON array: $(cat "$tmp/out")"
expect_status 1 "$server" --db "$db" device list nobody --json
expect_status 1 "$server" --db "$db" device revoke dev_00000000000000000000000000000000
grep -q 'No active device' "$tmp/err" || fail "revoke message: $(cat "$tmp/err")"
expect_status 2 "$server" --db "$db" device revoke
expect_status 2 "$server" --db "$db" device
expect_status 2 "$server" --db "$db" frobnicate

# serve (also the default) refuses bad addresses and plain HTTP off loopback.
# (tests/test-server-serve.py runs it for real.)
expect_status 2 "$server" --db "$db" serve --listen nonsense
expect_status 2 "$server" --db "$db" serve --listen 127.0.0.1:0 --stun nonsense
expect_status 2 "$server" --db "$db" serve --listen 127.0.0.1:0 --tls-cert /dev/null
expect_status 1 "$server" --db "$db" serve --listen 0.0.0.0:0 --stun off
grep -q 'Refusing to serve plain HTTP' "$tmp/err" || fail "serve message: $(cat "$tmp/err")"
expect_status 2 "$server" --db "$db" --tls-cert /dev/null

# Help.
expect_status 0 "$server" --help
grep -q 'enroll-key create' "$tmp/out" || fail "--help does not list the commands"
expect_status 0 "$server" help device list
grep -q -- '--json' "$tmp/out" || fail "help device list does not show --json"

echo "PASS"
