#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""flatpak/org.pipermesh.PiperMesh.json is a manifest flatpak-builder can use
for this tree: the app id of the desktop entry, the command the app build
installs, the GNOME 43 runtime (GTK 4.8, libadwaita 1.2: Debian 12's), the
sandbox permissions the app needs, the libraries the runtime lacks, and every
downloaded source pinned by a sha256 (or a git commit). It is not built here.

Usage: test-flatpak-manifest.py MANIFEST

The source tree is the manifest's parent's parent. Prints TAP.
"""
import json
import os
import re
import sys

MANIFEST = os.path.abspath(sys.argv[1])
ROOT = os.path.dirname(os.path.dirname(MANIFEST))
APP_ID = "org.pipermesh.PiperMesh"
MODULES = ["libsodium", "usrsctp", "qrencode", "zbar", "libdbusmenu", "avahi", "pipermesh"]
FINISH_ARGS = [
    "--share=network",
    "--socket=wayland",
    "--socket=fallback-x11",
    "--device=dri",
    "--talk-name=org.kde.StatusNotifierWatcher",
    "--talk-name=org.freedesktop.Notifications",
    "--system-talk-name=org.freedesktop.Avahi",
]
SHA256 = re.compile(r"^[0-9a-f]{64}$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
tests = []


def ok(cond, name):
    tests.append(bool(cond))
    print(("ok" if cond else "not ok") + f" {len(tests)} {name}", flush=True)
    return cond


def main():
    try:
        with open(MANIFEST, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        print("1..1")
        print(f"not ok 1 the manifest parses as JSON: {e}")
        return 1
    ok(True, "the manifest parses as JSON")

    ok(manifest.get("app-id") == APP_ID, f"app-id is {APP_ID}")
    ok(os.path.exists(os.path.join(ROOT, "data", APP_ID + ".desktop.in")),
       "the app id names the desktop entry in data/")
    ok(manifest.get("command") == "pipermesh-app", "command is pipermesh-app")
    with open(os.path.join(ROOT, "app", "meson.build"), encoding="utf-8") as f:
        ok("executable('pipermesh-app'" in f.read(), "app/meson.build installs pipermesh-app")
    ok((manifest.get("runtime"), manifest.get("runtime-version"), manifest.get("sdk"))
       == ("org.gnome.Platform", "43", "org.gnome.Sdk"),
       "the GNOME 43 runtime and SDK (GTK 4.8, libadwaita 1.2)")

    args = manifest.get("finish-args", [])
    for arg in FINISH_ARGS:
        ok(arg in args, f"finish-args has {arg}")
    ok("--device=all" in args, "finish-args has --device=all (zbar opens /dev/video* itself)")
    ok(len(args) == len(set(args)), "no finish-arg twice")
    ok(not any(a.startswith("--own-name=org.kde") for a in args),
       "no --own-name=org.kde.*: the tray registers its unique name where it cannot own one")
    ok(not any(a in ("--socket=session-bus", "--socket=system-bus", "--filesystem=host",
                     "--filesystem=home") for a in args),
       "no whole-bus or whole-home access")

    modules = manifest.get("modules", [])
    names = [m.get("name") if isinstance(m, dict) else None for m in modules]
    ok(names == MODULES, f"modules are {', '.join(MODULES)} in that order (got {names})")

    for module in modules:
        if not isinstance(module, dict):
            ok(False, "every module is inline (no external file to check)")
            continue
        name = module.get("name")
        ok(module.get("buildsystem") in ("autotools", "meson", "cmake-ninja"),
           f"{name}: a build system flatpak-builder knows")
        sources = module.get("sources", [])
        ok(len(sources) > 0, f"{name}: has sources")
        for source in sources:
            kind = source.get("type")
            if kind in ("archive", "file"):
                url = source.get("url", "")
                ok(url.startswith("https://"), f"{name}: {url} is https")
                ok(SHA256.match(source.get("sha256", "")) is not None, f"{name}: {url} has a sha256")
                for mirror in source.get("mirror-urls", []):
                    ok(mirror.startswith("https://"), f"{name}: mirror {mirror} is https")
            elif kind == "git":
                ok(COMMIT.match(source.get("commit", "")) is not None,
                   f"{name}: git source pinned to a commit")
            elif kind == "dir":
                ok(name == "pipermesh" and source.get("path") == "..",
                   f"{name}: only this tree is a local directory")
                ok(os.path.isfile(os.path.join(os.path.dirname(MANIFEST), source["path"], "meson.build")),
                   f"{name}: the directory is the project root")
            else:
                ok(False, f"{name}: known source type ({kind})")

    print(f"1..{len(tests)}")
    return 0 if all(tests) else 1


if __name__ == "__main__":
    sys.exit(main())
