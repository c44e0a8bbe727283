#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
#
# test-cli-id.sh PIPERMESH
#
# Runs “pipermesh id” against a temporary state directory: the first run makes
# an identity, the second prints the same one; the JSON parses and has the
# documented fields; usage errors exit 2 and failures exit 1. With a throwaway
# keyring (PM_TEST_KEYRING=1, see run-with-keyring.sh) the secret-service store
# is exercised too. Exits 77 (skip) without python3, which checks the JSON.

set -u

pm=${1:?usage: test-cli-id.sh PIPERMESH}

if ! command -v python3 >/dev/null 2>&1; then
  echo "SKIP: python3 is needed to check the JSON output"
  exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pm-cli-id.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

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

# check_json FIRST SECOND KEYTYPE STATEDIR: both runs printed the same identity.
check_json() {
  python3 - "$@" <<'EOF'
import json, os, re, sys
first, second, key_type, state_dir = sys.argv[1:5]
a = json.loads(first)
b = json.loads(second)
for doc in (a, b):
    for field in ("publicKey", "fingerprint", "keyType", "stateDir", "deviceName", "created", "newlyCreated"):
        assert field in doc, f"missing {field}: {doc}"
    assert re.fullmatch(r"[0-9a-f]{64}", doc["publicKey"]), doc["publicKey"]
    assert re.fullmatch(r"[0-9a-f]{4}(-[0-9a-f]{4}){4}", doc["fingerprint"]), doc["fingerprint"]
    assert doc["keyType"] == key_type, doc["keyType"]
    assert os.path.normpath(doc["stateDir"]) == os.path.normpath(state_dir), (doc["stateDir"], state_dir)
assert a["newlyCreated"] is True and b["newlyCreated"] is False
assert a["publicKey"] == b["publicKey"], "the second run printed a different key"
assert a["fingerprint"] == b["fingerprint"]
assert a["created"] == b["created"]
EOF
}

# File store.
state="$tmp/state"
expect_status 0 "$pm" --state-dir "$state" id --keystore file --json
first=$(cat "$tmp/out")
expect_status 0 "$pm" --state-dir "$state" id --keystore file --json
second=$(cat "$tmp/out")
check_json "$first" "$second" file "$state" || fail "JSON check (file store)"
[ "$(stat -c %a "$state/identity.key")" = 600 ] || fail "identity.key is not mode 600"

pub=$(printf '%s' "$first" | python3 -c 'import json,sys; print(json.load(sys.stdin)["publicKey"])')
expect_status 0 "$pm" --state-dir "$state" id
grep -q "Public key:  $pub" "$tmp/out" || fail "text output lacks the public key"
grep -q "Key store:   file" "$tmp/out" || fail "text output lacks the key store"

# Asking for another store for an existing identity: a note, same key.
expect_status 0 "$pm" --state-dir "$state" id --keystore secret-service
grep -q "Public key:  $pub" "$tmp/out" || fail "--keystore changed the identity"
grep -q "only applies when" "$tmp/err" || fail "no note about --keystore"

# Version and help.
expect_status 0 "$pm" --version
grep -q '^pipermesh [0-9]' "$tmp/out" || fail "--version output"
expect_status 0 "$pm" help
grep -q 'id ' "$tmp/out" || fail "help does not list id"
expect_status 0 "$pm" help id
grep -q -- '--keystore' "$tmp/out" || fail "help id does not show --keystore"
expect_status 0 "$pm" id --help

# Usage errors exit 2.
expect_status 2 "$pm"
expect_status 2 "$pm" no-such-command
expect_status 2 "$pm" --no-such-option id
expect_status 2 "$pm" --state-dir "$state" id --keystore floppy
expect_status 2 "$pm" --state-dir "$state" id surplus
expect_status 2 "$pm" help no-such-command

# Failures exit 1 with a message, and change nothing.
cp "$state/identity.key" "$tmp/key.bak"
printf 'garbage\n' >"$state/identity.key"
expect_status 1 "$pm" --state-dir "$state" id
grep -q 'identity.key' "$tmp/err" || fail "the error does not name identity.key"
[ "$(cat "$state/identity.key")" = garbage ] || fail "a damaged key file was overwritten"

# Secret Service store, when run-with-keyring.sh provides a keyring.
if [ "${PM_TEST_KEYRING:-}" = 1 ]; then
  state="$tmp/state-ss"
  expect_status 0 "$pm" --state-dir "$state" id --keystore secret-service --json
  first=$(cat "$tmp/out")
  expect_status 0 "$pm" --state-dir "$state" id --json
  second=$(cat "$tmp/out")
  check_json "$first" "$second" secret-service "$state" || fail "JSON check (secret-service store)"
  [ ! -e "$state/identity.key" ] || fail "secret-service store wrote identity.key"
  echo "secret-service store: checked"
else
  echo "secret-service store: not checked (${PM_TEST_KEYRING_SKIP:-not run under run-with-keyring.sh})"
fi

echo "PASS"
