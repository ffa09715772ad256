#!/usr/bin/env bash
# Fresh-clone build times: what a newcomer waits for before the first training, and before the tests
# (not a timed test; docs/benchmarks.md quotes its output).
#
# Clones the committed HEAD of this repository into a temporary directory and builds it there the way
# ./build.sh does (Release, warnings as errors as in CI), with ccache switched off so that nothing built
# before helps: first `loom_runtime` (loom and its plugins: what `./build.sh quickstart` builds), then
# everything else (the tests: what `./build.sh test` adds). Setup (scripts/setup.sh) is not timed: the
# dependencies are taken as installed.
#
#   tests/bench/bench_build.sh              # JOBS defaults to the number of cores
#   JOBS=2 tests/bench/bench_build.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
JOBS="${JOBS:-$(nproc)}"
WORK="$(mktemp -d /tmp/loom-bench-build.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

git clone -q "$REPO" "$WORK/repo"
cd "$WORK/repo"
commit=$(git rev-parse --short HEAD)
export CCACHE_DISABLE=1

t0=$SECONDS
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLOOM_WARNINGS_AS_ERRORS=ON >"$WORK/configure.log" 2>&1 ||
  { cat "$WORK/configure.log"; exit 1; }
configure=$((SECONDS - t0))
t1=$SECONDS
cmake --build build -j"$JOBS" --target loom_runtime >"$WORK/runtime.log" 2>&1 || { tail -50 "$WORK/runtime.log"; exit 1; }
runtime=$((SECONDS - t1))
t2=$SECONDS
cmake --build build -j"$JOBS" >"$WORK/rest.log" 2>&1 || { tail -50 "$WORK/rest.log"; exit 1; }
rest=$((SECONDS - t2))
warnings=$(cat "$WORK/runtime.log" "$WORK/rest.log" | grep -c "warning:" || true)
units_runtime=$(grep -c "Building CXX object" "$WORK/runtime.log" || true)
units_rest=$(grep -c "Building CXX object" "$WORK/rest.log" || true)

cat <<REPORT
### Fresh-clone build ($(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit)

- command: \`JOBS=$JOBS tests/bench/bench_build.sh\`; $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(c++ --version | head -1), ccache off, Release, -Werror

| step | seconds | minutes | C++ units compiled |
|---|---|---|---|
| configure | $configure | $(awk "BEGIN{printf \"%.1f\", $configure/60}") | |
| loom + plugins (\`./build.sh quickstart\`'s build) | $runtime | $(awk "BEGIN{printf \"%.1f\", $runtime/60}") | $units_runtime |
| **quickstart total (configure + loom + plugins)** | $((configure + runtime)) | **$(awk "BEGIN{printf \"%.1f\", ($configure+$runtime)/60}")** | |
| the rest (tests, fixtures, tools) | $rest | $(awk "BEGIN{printf \"%.1f\", $rest/60}") | $units_rest |
| **test command's build (configure + everything)** | $((configure + runtime + rest)) | **$(awk "BEGIN{printf \"%.1f\", ($configure+$runtime+$rest)/60}")** | |

Compiler warnings: $warnings.
REPORT
