#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Checks that every C source and header in the repository matches .clang-format.
#
# Usage: scripts/check-format.sh          report the files that need formatting; exit 1 if any
#        scripts/check-format.sh --fix    reformat them in place (clang-format -i)
#
# Files: every *.c and *.h that git knows about (tracked, or new and not ignored by .gitignore),
# so a file is checked before its first commit too. Outside a git checkout, every *.c and *.h
# below the source root. The style is written for clang-format 14 (Debian 12: apt-get install
# clang-format); other versions format some constructs differently.
set -eu

cd "$(dirname "$0")/.."

fix=false
case "${1:-}" in
  --fix) fix=true ;;
  "") ;;
  -h | --help)
    sed -n '3,11s/^# \{0,1\}//p' "$0"
    exit 0
    ;;
  *)
    echo "check-format.sh: unknown option '$1' (use --fix to apply the formatting)" >&2
    exit 2
    ;;
esac

clang_format=""
for c in clang-format-14 clang-format; do
  if command -v "$c" >/dev/null 2>&1; then
    clang_format=$c
    break
  fi
done
if [ -z "$clang_format" ]; then
  echo "check-format.sh: clang-format is not installed." >&2
  echo "  Install it with: scripts/install-deps.sh --test   (or: sudo apt-get install clang-format)" >&2
  exit 2
fi
version=$("$clang_format" --version)
case "$version" in
  *"version 14."*) ;;
  *) echo "check-format.sh: warning: .clang-format is tuned for clang-format 14; this is: $version" >&2 ;;
esac

files=()
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  while IFS= read -r -d '' f; do
    [ -f "$f" ] && files+=("$f")
  done < <(git ls-files -z --cached --others --exclude-standard -- '*.c' '*.h')
else
  while IFS= read -r -d '' f; do
    files+=("$f")
  done < <(find . -path './build*' -prune -o -path './_build*' -prune -o -path './.git' -prune \
             -o -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)
fi
if [ ${#files[@]} -eq 0 ]; then
  echo "check-format.sh: no C files found."
  exit 0
fi

# clang-format 14 puts spaces around the dashes of "G_DEFINE_QUARK (pm-foo-error-quark, ...)",
# which changes the quark's name, and its WhitespaceSensitiveMacros option does not help for a
# macro call without a ";" (llvm/llvm-project#54522). So those lines are left out: range_args
# FILE sets "ranges" to --lines=A:B options covering every other line of FILE (none at all for
# a file of nothing but such lines, which is then skipped).
range_args () {
  ranges=()
  local r
  while IFS= read -r r; do
    ranges+=("$r")
  done < <(awk '
    BEGIN { start = 1 }
    /^[ \t]*G_DEFINE_QUARK[ \t]*\(/ {
      if (NR > start) printf "--lines=%d:%d\n", start, NR - 1
      start = NR + 1
      next
    }
    END { if (start <= NR) printf "--lines=%d:%d\n", start, NR }' "$1")
}

if $fix; then
  for f in "${files[@]}"; do
    range_args "$f"
    [ ${#ranges[@]} -gt 0 ] || continue
    "$clang_format" -i --style=file "${ranges[@]}" -- "$f"
  done
  echo "Formatted ${#files[@]} files with $clang_format."
  exit 0
fi

bad=()
for f in "${files[@]}"; do
  range_args "$f"
  [ ${#ranges[@]} -gt 0 ] || continue
  if ! "$clang_format" --dry-run --Werror --style=file "${ranges[@]}" -- "$f" >/dev/null 2>&1; then
    bad+=("$f")
  fi
done

# ColumnLimit is 0 in .clang-format (it keeps the breaks you wrote), so the 100-column limit
# is checked here instead: a warning, not a failure, and lines holding a string literal are
# left alone (messages stay on one line so they can be grepped).
python3 - "${files[@]}" <<'EOF' || true
import sys
long = []
for path in sys.argv[1:]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if len(line.expandtabs(8)) > 100 and '"' not in line:
                    long.append(f"  {path}:{n}: {len(line)} columns")
    except OSError:
        pass
if long:
    print(f"check-format.sh: warning: {len(long)} lines are over 100 columns (not an error):",
          file=sys.stderr)
    for l in long[:20]:
        print(l, file=sys.stderr)
    if len(long) > 20:
        print(f"  ... and {len(long) - 20} more", file=sys.stderr)
EOF

if [ ${#bad[@]} -gt 0 ]; then
  echo "check-format.sh: ${#bad[@]} of ${#files[@]} files do not match .clang-format:" >&2
  for f in "${bad[@]}"; do
    range_args "$f"
    changed=$("$clang_format" --style=file "${ranges[@]}" -- "$f" | diff -- "$f" - | grep -c '^[<>]' || true)
    echo "  $f  ($changed lines would change)" >&2
  done
  echo "See the changes with:  $clang_format --style=file FILE | diff -u FILE -" >&2
  echo "                       (that one also spaces out G_DEFINE_QUARK names, which --fix leaves alone)" >&2
  echo "Fix them with:         scripts/check-format.sh --fix" >&2
  exit 1
fi
echo "check-format.sh: all ${#files[@]} C files match .clang-format."
