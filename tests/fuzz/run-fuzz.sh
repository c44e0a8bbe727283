#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
#
# run-fuzz.sh TARGET SEEDS WORKDIR [libFuzzer options...]
#
# Runs a libFuzzer target on a copy of its seed corpus in the build directory:
# the source tree is never written. WORKDIR/corpus keeps what earlier runs found
# (the seeds are copied over it each time); crashes go to WORKDIR/artifacts/.
# Reproduce one with: TARGET WORKDIR/artifacts/crash-...
set -eu
target=$1
seeds=$2
work=$3
shift 3

mkdir -p "$work/corpus" "$work/artifacts"
cp "$seeds"/* "$work/corpus/"
exec "$target" -artifact_prefix="$work/artifacts/" -print_final_stats=1 "$@" "$work/corpus"
