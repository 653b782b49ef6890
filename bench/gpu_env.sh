# Sourced by the GPU scripts on the lent machine (no network; its python3 holds CUDA torch):
# installs the wheels bench/gpu_wheels.sh put in .whl/, puts them and the working tree on
# PYTHONPATH, and returns non-zero, saying why, when torch sees no GPU or a package is missing.
# Expects PY (the Python to use) and the working tree as the current directory.
if [ -d .whl ]; then
    SITE=${TMPDIR:-/tmp}/deepscope-site
    "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" \
        .whl/*.whl || return 1
    export PYTHONPATH=$SITE:$PWD
fi
if ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "$PY has no torch that sees a GPU" >&2
    return 1
fi
if ! "$PY" -c "import deepscope, pydantic, pymmcore_plus, pytorch_msssim, tifffile"; then
    echo "packages missing: run bench/gpu_wheels.sh here and carry .whl" >&2
    return 1
fi
