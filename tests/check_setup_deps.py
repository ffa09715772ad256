#!/usr/bin/env python3
"""Checks that scripts/setup.sh installs every package Loom's CMake files look for.

Collects every find_package(NAME ...) in the repository's CMake files (CMakeLists.txt, *.cmake, *.cmake.in;
build folders and .git skipped), maps NAME to what provides it (the table below) and checks that each Debian
package is in setup.sh's DEBS=(...) list. A find_package of a name missing from the table fails with the
fix: add the Debian package that provides it to DEBS and to the table.

Usage: check_setup_deps.py [REPO_ROOT]   (default: the folder above this script)
"""
import os
import re
import sys

# find_package name -> the Debian package that provides it, or (None, why) for what is not a Debian package.
PROVIDERS = {
    "Boost": "libboost-dev",
    "tomlplusplus": "libtomlplusplus-dev",
    "spdlog": "libspdlog-dev",
    "fmt": "libfmt-dev",  # spdlog's CMake package finds it
    "CLI11": "libcli11-dev",
    "nlohmann_json": "nlohmann-json3-dev",
    "ZLIB": "zlib1g-dev",
    "OpenSSL": "libssl-dev",
    "GTest": "libgtest-dev",
    "GMock": "libgmock-dev",
    "MPI": "libopenmpi-dev",
    "JPEG": "libjpeg62-turbo-dev",
    "PNG": "libpng-dev",
    "Threads": "build-essential",  # libc's pthread
    "Python3": "python3",
    "Torch": (None, "LibTorch comes from the PyPI torch wheel that setup.sh installs (TORCH_VERSION)"),
    "Loom": (None, "the package this repository installs (docs/examples build against it)"),
}

SKIP_DIRS = {".git", "node_modules", "__pycache__"}
FIND_PACKAGE = re.compile(r"^\s*find_package\s*\(\s*([A-Za-z0-9_+.-]+)", re.MULTILINE)


def cmake_files(root):
    for d, dirs, files in os.walk(root):
        # Build folders (build/, build-*/, any folder holding a CMakeCache.txt) are generated, not sources.
        dirs[:] = [x for x in dirs if x not in SKIP_DIRS and not x.startswith("build")
                   and not os.path.exists(os.path.join(d, x, "CMakeCache.txt"))]
        for f in files:
            if f == "CMakeLists.txt" or f.endswith(".cmake") or f.endswith(".cmake.in"):
                yield os.path.join(d, f)


def strip_comments(text):
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def setup_debs(setup_sh):
    text = open(setup_sh, encoding="utf-8").read()
    m = re.search(r"^DEBS=\((.*?)\)", text, re.MULTILINE | re.DOTALL)
    if not m:
        sys.exit(f"{setup_sh}: no DEBS=(...) list of Debian packages found; the check reads the packages from it")
    return set(strip_comments(m.group(1)).split())


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    setup_sh = os.path.join(root, "scripts", "setup.sh")
    debs = setup_debs(setup_sh)
    found = {}  # name -> first file:line
    for path in sorted(cmake_files(root)):
        text = strip_comments(open(path, encoding="utf-8").read())
        for m in FIND_PACKAGE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.setdefault(m.group(1), f"{os.path.relpath(path, root)}:{line}")
    if not found:
        sys.exit(f"no find_package() found under {root}; is that the repository root?")

    errors = []
    for name, where in sorted(found.items()):
        provider = PROVIDERS.get(name)
        if provider is None:
            errors.append(f"{where}: find_package({name}) is not in the table of {__file__}. Add the Debian "
                          f"package that provides it to DEBS in scripts/setup.sh and map {name} to it in PROVIDERS.")
        elif isinstance(provider, tuple):
            print(f"ok   {name:14} {provider[1]} ({where})")
        elif provider not in debs:
            errors.append(f"{where}: find_package({name}) needs the Debian package {provider}, which "
                          f"scripts/setup.sh does not install; add it to DEBS there (and to README's setup paragraph).")
        else:
            print(f"ok   {name:14} {provider} ({where})")
    for e in errors:
        print("FAIL " + e)
    if errors:
        return 1
    print(f"check_setup_deps: all {len(found)} find_package() names are provided by scripts/setup.sh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
