#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""po/POTFILES.in lists every file with translatable strings, and only files
that exist; xgettext extracts the strings from all of them.

Usage: test-potfiles.py SOURCE-ROOT

A file has translatable strings if it is C with _(), N_(), C_(), NC_() or
ngettext() around a string, a GtkBuilder file with translatable="yes", a
desktop entry or AppStream template (*.desktop.in, *.metainfo.xml.in) or a
GSettings schema (*.gschema.xml). Prints TAP.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = sys.argv[1]
SKIP_DIRS = {".git", "po", "flatpak", "__pycache__"}
C_MARK = re.compile(r'(?<![A-Za-z0-9_])(?:_|N_|C_|NC_|ngettext)\s*\(\s*"')
tests = []


def ok(cond, name):
    tests.append(bool(cond))
    print(("ok" if cond else "not ok") + f" {len(tests)} {name}", flush=True)
    return cond


def translatable(rel, text):
    if rel.endswith((".c", ".h")):
        return C_MARK.search(text) is not None
    if rel.endswith(".ui"):
        return 'translatable="yes"' in text
    return rel.endswith((".desktop.in", ".metainfo.xml.in", ".gschema.xml"))


def main():
    listed = []
    with open(os.path.join(ROOT, "po", "POTFILES.in"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                listed.append(line)

    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel_dir = os.path.relpath(dirpath, ROOT)
        dirnames[:] = sorted(d for d in dirnames
                             if d not in SKIP_DIRS and not d.startswith(("build", "_build"))
                             and not (rel_dir == "tests" and d in ("fuzz", "natlab")))
        for name in sorted(filenames):
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel.startswith("tests" + os.sep):
                continue
            if not rel.endswith((".c", ".h", ".ui", ".in", ".xml")):
                continue
            try:
                with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError):
                continue
            if translatable(rel, text):
                found.append(rel)

    missing = [f for f in found if f not in listed]
    ok(not missing, "POTFILES.in lists every file with translatable strings"
       + (": missing " + ", ".join(missing) if missing else ""))
    gone = [f for f in listed if not os.path.exists(os.path.join(ROOT, f))]
    ok(not gone, "every file POTFILES.in lists exists" + (": " + ", ".join(gone) if gone else ""))
    extra = [f for f in listed if f not in found and f not in gone]
    ok(not extra, "POTFILES.in lists no file without translatable strings"
       + (": " + ", ".join(extra) if extra else ""))
    dupes = sorted({f for f in listed if listed.count(f) > 1})
    ok(not dupes, "no file is listed twice" + (": " + ", ".join(dupes) if dupes else ""))

    xgettext = shutil.which("xgettext")
    if xgettext is None:
        print(f"ok {len(tests) + 1} xgettext extracts the strings # SKIP xgettext is missing (apt-get install gettext)")
        tests.append(True)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            pot = os.path.join(tmp, "pipermesh.pot")
            # The keywords of meson's i18n.gettext(preset: 'glib').
            out = subprocess.run([xgettext, "--from-code=UTF-8", "--add-comments=TRANSLATORS:",
                                  "--keyword=_", "--keyword=N_", "--keyword=C_:1c,2",
                                  "--keyword=NC_:1c,2", "--keyword=g_dcgettext:2",
                                  "--keyword=g_dngettext:2,3", "--keyword=g_dpgettext2:2c,3",
                                  "--flag=N_:1:pass-c-format", "--flag=C_:2:pass-c-format",
                                  "--flag=NC_:2:pass-c-format", "--flag=g_dngettext:2:pass-c-format",
                                  "--flag=g_strdup_printf:1:c-format",
                                  "--directory", ROOT, "--files-from",
                                  os.path.join(ROOT, "po", "POTFILES.in"), "--output", pot],
                                 capture_output=True, text=True, timeout=60)
            ok(out.returncode == 0 and "warning" not in out.stderr.lower(),
               "xgettext extracts every file without a warning")
            for line in out.stderr.splitlines():
                print("# " + line)
            text = open(pot, encoding="utf-8").read() if os.path.exists(pot) else ""
            for probe in ("No Devices Yet", "Pair a Device", "Connect to %s", "LAN",
                          "Coordination server to enroll with", "Your devices in one private, encrypted mesh",
                          "Reach your devices over one private, end-to-end encrypted mesh"):
                ok(f'msgid "{probe}"' in text, f"the template holds “{probe}”")

    print(f"1..{len(tests)}")
    return 0 if all(tests) else 1


if __name__ == "__main__":
    sys.exit(main())
