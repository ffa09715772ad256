#!/usr/bin/env bash
# How long one source file of a third-party plugin takes to compile, per plugin kind: the minimal plugins
# in tests/bench/plugin_compile/ (dataset, augmentation, callback, metric_sink, precision, model), each
# compiled with the flags loom_add_plugin gives an out-of-tree plugin (a scratch CMake project that uses
# cmake/LoomTorch.cmake and cmake/LoomPlugin.cmake, Release, its compile_commands.json replayed without
# ccache). Prints the median of RUNS compilations per file: the compiler's CPU time (user + system, which
# other work on the machine barely changes) and the wall time, in seconds.
#
#   tests/bench/bench_plugin_compile.sh                 # the SDK headers of this checkout
#   SDK_INCLUDE=/path/to/include tests/bench/bench_plugin_compile.sh   # another copy of sdk/include
#   RUNS=5 tests/bench/bench_plugin_compile.sh
#   KINDS="callback precision" tests/bench/bench_plugin_compile.sh    # some kinds only
#
# Compare numbers from the same machine and load only (docs/benchmarks.md records them).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
sdk_include=${SDK_INCLUDE:-$src/sdk/include}
runs=${RUNS:-3}
kinds=${KINDS:-dataset augmentation callback metric_sink precision model}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.25)
project(loom_bench_plugin_compile CXX)
list(APPEND CMAKE_MODULE_PATH "$src/cmake")
include(LoomTorch)
add_library(Loom::sdk INTERFACE IMPORTED)
set_target_properties(Loom::sdk PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "$sdk_include"
                      INTERFACE_LINK_LIBRARIES Loom::torch INTERFACE_COMPILE_FEATURES cxx_std_20)
include(LoomPlugin)
foreach(kind $kinds)
  loom_add_plugin(bench_\${kind} SOURCES "$src/tests/bench/plugin_compile/\${kind}.cpp")
endforeach()
EOF
cmake -S "$tmp" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >"$tmp/configure.log" 2>&1 ||
  { cat "$tmp/configure.log"; exit 1; }

python3 - "$tmp/build/compile_commands.json" "$runs" <<'EOF'
import json, os, shlex, statistics, subprocess, sys, time
entries = json.load(open(sys.argv[1]))
runs = int(sys.argv[2])
print(f"{'file':<18} {'CPU s':>6} {'wall s':>7}   (medians of {runs} compilations with loom_add_plugin's flags, Release)")
failed = 0
for e in entries:
    name = e["file"].rsplit("/", 1)[-1]
    args = shlex.split(e["command"])
    args[args.index("-o") + 1] = "/dev/null"
    cpu, wall = [], []
    for _ in range(runs):
        before, t0 = os.times(), time.monotonic()
        r = subprocess.run(args, cwd=e["directory"], capture_output=True, text=True)
        after = os.times()
        wall.append(time.monotonic() - t0)
        cpu.append(after.children_user - before.children_user + after.children_system - before.children_system)
        if r.returncode != 0:
            break
    if r.returncode != 0:
        failed += 1
        first = next((l for l in r.stderr.splitlines() if "error:" in l), r.stderr.strip()[:200])
        print(f"{name:<18} does not compile: {first}")
        continue
    print(f"{name:<18} {statistics.median(cpu):6.2f} {statistics.median(wall):7.2f}")
sys.exit(1 if failed else 0)
EOF
