#!/usr/bin/env bash
# Collects into .gpu-deps/ (git-ignored) what a machine with only a compiler, CMake, Python + torch lacks
# to build Loom offline, taken from THIS machine's Debian packages (run scripts/setup.sh first):
#   include/<lib>/...   headers, one folder per library (so e.g. fmt is only visible to spdlog's users,
#                       never to translation units that also see LibTorch's bundled fmt)
#                       toml++, spdlog, fmt, CLI11, nlohmann-json, zlib, libjpeg, libpng, and the Boost
#                       headers Boost.DLL really includes (found with the compiler, plus
#                       boost/{config,predef,dll} whole)
#   lib/libz.a          zlib, static and position-independent (no runtime dependency on libz.so.1)
#   lib/libjpeg.so.62, lib/libpng16.so.16   libjpeg-turbo and libpng (the image-folder dataset), shared:
#                       Debian's static archives of them are not position-independent
#   src/googletest/     GoogleTest sources (built with add_subdirectory)
#   data/fashion-mnist/ the Fashion-MNIST files (~30 MiB) for the quickstart; --no-data leaves them out
#   MANIFEST.txt        package versions and sizes
# Used by: cmake -DLOOM_DEPS_DIR=$PWD/.gpu-deps (cmake/LoomOfflineDeps.cmake) and scripts/gpu-check.sh.
#
#   scripts/gpu-deps.sh [--no-data] [DEST]       (DEST defaults to .gpu-deps in the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."

with_data=1
dest=.gpu-deps
for a in "$@"; do
  case "$a" in
    --no-data) with_data=0 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) dest=$a ;;
  esac
done

CXX=${CXX:-g++}
INC=/usr/include
FMNIST=/usr/share/datasets/fashion-mnist
need=(libtomlplusplus-dev libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev libboost-dev zlib1g-dev
      libjpeg62-turbo-dev libpng-dev googletest)
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { echo "gpu-deps: Debian package $p is missing here (run scripts/setup.sh)" >&2; exit 1; }
done

dest=$(realpath -m "$dest")
rm -rf "$dest"
mkdir -p "$dest"/include "$dest"/lib "$dest"/src

# Header-only libraries, each in its own include root.
copy_tree() {  # copy_tree <name> <dir-under-/usr/include or file>...
  local name=$1; shift
  mkdir -p "$dest/include/$name"
  for d in "$@"; do cp -a "$INC/$d" "$dest/include/$name/"; done
}
copy_tree toml toml++
copy_tree spdlog spdlog
copy_tree fmt fmt
copy_tree cli11 CLI
copy_tree json nlohmann
copy_tree zlib zlib.h zconf.h

# Boost: exactly the headers the compiler opens for every <boost/...> Loom includes (host, plugins,
# tests, SDK), with Loom's defines; plus boost/config, boost/predef and boost/dll whole, so another GCC
# (whose version picks other config/predef headers) still finds what it looks for.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
  echo '#include <boost/dll/shared_library.hpp>'
  echo '#include <boost/dll/runtime_symbol_info.hpp>'
  grep -rhoE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<boost/[^>]+>' host sdk plugins tests 2>/dev/null | sed 's/^[[:space:]]*//' || true
  echo 'int main() {}'
} | sort -u > "$tmp/boost_probe.cpp"
# (sort moves 'int main' after the includes: '#' sorts before 'i')
"$CXX" -std=c++20 -DBOOST_DLL_USE_STD_FS -DBOOST_ALL_NO_LIB -M "$tmp/boost_probe.cpp" |
  tr ' \\' '\n\n' | grep "^$INC/boost/" | sort -u > "$tmp/boost.list"
mkdir -p "$dest/include/boost"
(cd "$INC" && sed "s|^$INC/||" "$tmp/boost.list" | xargs cp -a --parents -t "$dest/include/boost")
for d in config predef dll; do
  mkdir -p "$dest/include/boost/boost"
  cp -a "$INC/boost/$d" "$dest/include/boost/boost/"
done
for f in predef.h version.hpp config.hpp; do [ -f "$INC/boost/$f" ] && cp -a "$INC/boost/$f" "$dest/include/boost/boost/"; done
# Check the copy is self-sufficient: with it first on the search path, the compiler must open no
# header from /usr/include/boost any more.
leftover=$("$CXX" -std=c++20 -DBOOST_DLL_USE_STD_FS -DBOOST_ALL_NO_LIB -isystem "$dest/include/boost" \
             -M "$tmp/boost_probe.cpp" | tr ' \\' '\n\n' | grep -c "^$INC/boost/" || true)
if [ "$leftover" != 0 ]; then
  echo "gpu-deps: the copied Boost headers are incomplete" >&2; exit 1
fi

# zlib: the static archive (PIC on Debian amd64: no R_X86_64_32 relocations) links into the plugin and
# the test binary; nothing is needed at run time.
ZA=$(dpkg -L zlib1g-dev | grep '/libz\.a$' | head -1)
cp -a "$ZA" "$dest/lib/libz.a"
mkdir -p "$tmp/z"
nonpic=$(cd "$tmp/z" && ar x "$dest/lib/libz.a" && for o in *.o; do readelf -r "$o"; done | grep -cE 'R_X86_64_(32|32S) ' || true)
if [ "$nonpic" != 0 ]; then
  echo "gpu-deps: $ZA is not position-independent; the fashion-mnist plugin could not link it" >&2; exit 1
fi

# libjpeg-turbo and libpng (the image-folder dataset): headers and the shared libraries, under their
# sonames. Not the static archives: Debian builds libjpeg.a and libpng16.a without -fPIC (their error
# printers address stderr directly), so no plugin can hold them. At run time they need only libz.so.1,
# libm and libc; the build tree finds them through its RUNPATH.
mkdir -p "$dest/include/jpeg" "$dest/include/png"
for h in jpeglib.h jerror.h jmorecfg.h; do cp -L "$INC/$h" "$dest/include/jpeg/"; done
cp -L "$(dpkg -L libjpeg62-turbo-dev | grep '/jconfig\.h$' | head -1)" "$dest/include/jpeg/"
for h in png.h pngconf.h pnglibconf.h; do cp -L "$INC/libpng16/$h" "$dest/include/png/"; done
cp -L "$(dpkg -L libjpeg62-turbo-dev | grep '/libjpeg\.so$' | head -1)" "$dest/lib/libjpeg.so.62"
cp -L "$(dpkg -L libpng-dev | grep '/libpng16\.so$' | head -1)" "$dest/lib/libpng16.so.16"

# GoogleTest sources (the package's CMake project: googletest + googlemock).
cp -a /usr/src/googletest "$dest/src/googletest"
rm -rf "$dest/src/googletest/googletest/docs" "$dest/src/googletest/googlemock/docs" \
       "$dest/src/googletest/googletest/test" "$dest/src/googletest/googlemock/test" \
       "$dest/src/googletest/googletest/samples" 2>/dev/null || true

if ((with_data)); then
  if [ -f "$FMNIST/train-images-idx3-ubyte.gz" ]; then
    mkdir -p "$dest/data/fashion-mnist"
    cp -a "$FMNIST"/*-ubyte.gz "$dest/data/fashion-mnist/"
  else
    echo "gpu-deps: $FMNIST not installed here; the GPU quickstart will fall back to synthetic data" >&2
  fi
fi

{
  echo "# .gpu-deps, made by scripts/gpu-deps.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ) ($(. /etc/os-release; echo "$PRETTY_NAME"), $("$CXX" --version | head -1))"
  for p in "${need[@]}"; do echo "$p $(dpkg-query -W -f='${Version}' "$p")"; done
  echo "boost headers: $(wc -l < "$tmp/boost.list") from the compiler's -M list, plus boost/{config,predef,dll}"
  du -sh "$dest"/include/* "$dest"/lib "$dest"/src "$dest"/data 2>/dev/null | sed 's|^|size |'
} > "$dest/MANIFEST.txt"

cat "$dest/MANIFEST.txt"
total=$(du -sm "$dest" | cut -f1)
echo "gpu-deps: $dest is $(du -sh "$dest" | cut -f1) ($(du -sh --exclude=data "$dest" | cut -f1) without data/)"
if ((total >= 60)); then
  echo "gpu-deps: too large to carry (64 MiB limit, with the working tree)" >&2; exit 1
fi
