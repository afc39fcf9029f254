#!/usr/bin/env bash
# Installs every build and test dependency from Debian 12 packages, then configures and
# builds taia (Release) into ./build.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libdnnl-dev            # GEMM (oneDNN)
  ocl-icd-opencl-dev     # Debian's oneDNN CMake config calls find_package(OpenCL) (GPU runtime OCL)
  libopenblas-dev        # second GEMM, measured against oneDNN in bench/
  nlohmann-json3-dev     # JSON
  libcli11-dev           # command line
  libpcre2-dev           # pre-tokenizer regexes (UTF + Unicode properties, JIT)
  libutf8proc-dev        # NFC normalization
  libsentencepiece-dev   # SentencePiece .model files
  libgtest-dev libgmock-dev  # tests
  libbenchmark-dev       # benchmarks
  libboost-dev           # taia serve (HTTP: Boost.Beast + Boost.Asio)
  openmpi-bin libopenmpi-dev  # data-parallel training (mpirun -np K taia train); optional at build time
  clang libclang-rt-dev  # sanitizer pass of scripts/test.sh (ASan + UBSan runtimes, libFuzzer)
  python3-torch python3-numpy  # the PyTorch reference for parity tests (/usr/bin/python3)
  python3-dev python3-pybind11  # the Python module (build/python/taia)
  python3-pytest python3-venv python3-setuptools python3-wheel  # its tests, pip install . in a venv
  chromium               # renders the HTML report in the eval test (headless screenshot)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build --parallel
echo "taia built: ./build/tools/cli/taia"
