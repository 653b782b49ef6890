#!/usr/bin/env bash
# Download, here, the wheels bench/gpu_check.sh and gpu_train.sh need on a lent GPU machine,
# into .whl/.
#
# That machine cannot reach the network. Its image holds Python 3.12 with CUDA torch, numpy,
# SciPy, scikit-image, OpenCV, tifffile, safetensors and pytest, but not the packages below
# (found by running `gpu_check.sh --cpu-smoke` in a venv holding only the image's packages).
# Each is fetched at the version this checkout's .venv has (what CI tests), as a CPython 3.12
# manylinux wheel, without dependencies: the list is the closure. bench/gpu_env.sh installs
# them from .whl/ when it is there; name .whl in the device call's carry (7.5 MB).
#
#   bash bench/gpu_wheels.sh          # after scripts/setup.sh
#   PYTHON_VERSION=3.11 bash bench/gpu_wheels.sh   # wheels for another Python (to check here)
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(
    pydantic pydantic-core annotated-types typing-inspection pydantic-extra-types
    pymmcore pymmcore-plus psygnal useq-schema platformdirs ome-types ome-writers xsdata
    shapely pytorch-msssim
)
rm -rf .whl
mkdir -p .whl
for name in "${PACKAGES[@]}"; do
    version=$(.venv/bin/python -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')
    if [ -z "$version" ]; then
        echo "$name is not installed in .venv: run scripts/setup.sh" >&2
        exit 1
    fi
    python3 -m pip download -q --no-deps --only-binary=:all: -d .whl \
        --python-version "${PYTHON_VERSION:-3.12}" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 "$name==$version"
done
du -sh .whl
