#!/usr/bin/env bash
# Installs what Loom needs, skipping whatever is already present (idempotent, quick on a ready machine).
#   Debian packages: compilers' libraries (Boost.DLL, toml++, spdlog, GoogleTest, CLI11, nlohmann-json,
#   zlib, OpenSSL's libcrypto (SHA-256 of checkpoints and caches), libjpeg-turbo and libpng for the
#   image-folder dataset, Open MPI for the mpi communicator), ccache, and the Fashion-MNIST data set.
#   tests/check_setup_deps.py (ctest: setup.deps_declared) checks this list against every find_package() in
#   the CMake files.
#   PyPI: torch (LibTorch comes from its wheel), numpy (reference checks in tests), tensorboard (the tests
#   read the tensorboard metric sink's event files back with it), torchvision + Pillow (the reference for
#   the model zoo's and the augmentation ops' parity tests).
set -euo pipefail

TORCH_VERSION=2.15.0   # keep in step with LOOM_TORCH_VERSION in CMakeLists.txt
# tensorboard 2.21's generated protobuf code is from protobuf 6.31 and checks the runtime at import; a
# protobuf of the same major version keeps that check quiet whatever newer major pip would pick.
TENSORBOARD_VERSION=2.21.0
PROTOBUF_VERSION=6.33.6
# No torchvision release is built for torch 2.15 yet; 0.29.2 (built for 2.14) is installed --no-deps so pip
# keeps our torch. The tests use only its pure-Python parts (models, transforms.v2), which import and run
# with torch 2.15 (its compiled ops library is not needed).
TORCHVISION_VERSION=0.29.2
PILLOW_VERSION=12.0.0
DEBS=(build-essential cmake python3 python3-pip libboost-dev libtomlplusplus-dev libspdlog-dev libfmt-dev
      libgtest-dev libgmock-dev libcli11-dev nlohmann-json3-dev zlib1g-dev ccache dataset-fashion-mnist
      libopenmpi-dev openmpi-bin libjpeg62-turbo-dev libpng-dev libssl-dev)
PYTHON=${PYTHON:-python3}

missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

have_torch=$("$PYTHON" -c 'import torch, numpy; print(torch.__version__.split("+")[0])' 2>/dev/null || true)
if [ "$have_torch" != "$TORCH_VERSION" ]; then
  echo "setup: installing torch==$TORCH_VERSION and numpy from PyPI (found: '${have_torch:-none}')"
  "$PYTHON" -m pip install -q --disable-pip-version-check "torch==$TORCH_VERSION" numpy
fi

have_tb=$("$PYTHON" -c 'import tensorboard, google.protobuf as p
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
print(tensorboard.__version__, p.__version__)' 2>/dev/null || true)
if [ "$have_tb" != "$TENSORBOARD_VERSION $PROTOBUF_VERSION" ]; then
  echo "setup: installing tensorboard==$TENSORBOARD_VERSION protobuf==$PROTOBUF_VERSION from PyPI (found: '${have_tb:-none}')"
  "$PYTHON" -m pip install -q --disable-pip-version-check "tensorboard==$TENSORBOARD_VERSION" "protobuf==$PROTOBUF_VERSION"
fi
have_tv=$("$PYTHON" -c 'import torchvision, PIL; from torchvision.transforms import v2; import torchvision.models
print(torchvision.__version__.split("+")[0])' 2>/dev/null || true)
if [ "$have_tv" != "$TORCHVISION_VERSION" ]; then
  echo "setup: installing torchvision==$TORCHVISION_VERSION (--no-deps) and pillow from PyPI (found: '${have_tv:-none}')"
  "$PYTHON" -c 'import PIL' 2>/dev/null || "$PYTHON" -m pip install -q --disable-pip-version-check "pillow==$PILLOW_VERSION"
  "$PYTHON" -m pip install -q --disable-pip-version-check --no-deps "torchvision==$TORCHVISION_VERSION"
fi
echo "setup: ok (torch $TORCH_VERSION, tensorboard $TENSORBOARD_VERSION, torchvision $TORCHVISION_VERSION, Debian packages present)"
