#!/usr/bin/env bash
# Installs Loom into a temporary prefix, builds docs/examples/logistic-regression out of tree against the
# installed SDK (find_package(Loom)), and loads and trains with it through the installed `loom`.
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$src/docs/examples/logistic-regression" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$tmp/prefix" "${launcher[@]}" >"$tmp/configure.log" 2>&1 || { cat "$tmp/configure.log"; exit 1; }
cmake --build "$tmp/build" -j2 >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }

export LOOM_PLUGIN_PATH="$tmp/build/plugins"
out=$("$tmp/prefix/bin/loom" plugins logistic-regression)
echo "$out"
grep -q "model plugin 'logistic-regression' 1.0.0" <<<"$out"
"$tmp/prefix/bin/loom" plugins --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert not j["failures"], j["failures"]
names = {(p["kind"], p["name"]) for p in j["plugins"]}
assert ("model", "logistic-regression") in names and ("dataset", "fashion-mnist") in names, names'

cat >"$tmp/c.toml" <<TOML
[run]
name = "third-party"
epochs = 1
threads = 1
output_dir = "$tmp/runs"
[dataset]
plugin = "synthetic"
samples = 256
[model]
plugin = "logistic-regression"
TOML
"$tmp/prefix/bin/loom" run "$tmp/c.toml"
test -f "$tmp"/runs/third-party/*/summary.json
echo "install test: ok"
