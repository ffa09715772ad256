#!/usr/bin/env bash
# Loom's build wrapper. Every command sets up first (idempotent, quick when dependencies are present).
#   ./build.sh quickstart [--set k=v …]   set up, build loom and its plugins (no tests), train configs/quickstart.toml
#   ./build.sh test                       set up, build, run the whole test suite (ctest)
#   ./build.sh build                      set up and build only
#   ./build.sh setup                      install dependencies only
# Environment: LOOM_BUILD_DIR (default build), JOBS (default: number of cores), CI (set: warnings are errors).
set -euo pipefail
cd "$(dirname "$0")"

BUILD_DIR=${LOOM_BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
# ccache across clean clones: paths relative to the checkout, PCH-aware.
export CCACHE_BASEDIR=$PWD
export CCACHE_NOHASHDIR=1
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-8G}

setup() { bash scripts/setup.sh; }

# $1: a target to build (default: everything, tests included).
build() {
  setup
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    mkdir -p "$BUILD_DIR"
    # CI (CI=true) builds with warnings as errors: a normal build must stay free of compiler warnings.
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${CI:+-DLOOM_WARNINGS_AS_ERRORS=ON} >"$BUILD_DIR/configure.log" 2>&1 ||
      { cat "$BUILD_DIR/configure.log"; rm -f "$BUILD_DIR/CMakeCache.txt"; exit 1; }
  fi
  local t0=$SECONDS
  cmake --build "$BUILD_DIR" -j"$JOBS" ${1:+--target "$1"}
  echo "build.sh: built ${1:-everything} in $((SECONDS - t0)) s ($JOBS jobs)"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  setup) setup ;;
  build) build ;;
  test)
    build
    ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$JOBS" "$@"
    ;;
  quickstart)
    build loom_runtime   # loom and its plugins only: the tests are the test command's
    "$BUILD_DIR/bin/loom" run configs/quickstart.toml "$@"
    ;;
  *)
    sed -n '2,8p' "$0"
    exit 2
    ;;
esac
