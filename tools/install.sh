#!/usr/bin/env bash
# One-command, idempotent set-up of efficientvit_det and the OpenMMLab stack on
# today's PyTorch. Order matters (see README "Install"): build tools first,
# a matching torch/torchvision pair, mmcv 2.1.0 compiled with ops (cached wheel),
# then the pure-Python OpenMMLab packages and this package in editable mode.
#
# Environment:
#   EVD_VENV        virtual environment to create/use (default: .venv in the repo;
#                   set EVD_VENV=none to install into the active Python)
#   EVD_WHEEL_CACHE where the built mmcv wheel is kept
#                   (default: ~/.cache/efficientvit_det/wheels)
#   MAX_JOBS        parallel compile jobs for mmcv (default: number of CPUs)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
constraints="$repo/requirements/constraints.txt"
venv=${EVD_VENV:-$repo/.venv}
wheel_cache=${EVD_WHEEL_CACHE:-$HOME/.cache/efficientvit_det/wheels}
start=$(date +%s)

say() { printf '[install %4ds] %s\n' "$(( $(date +%s) - start ))" "$*"; }

if [ "$venv" = none ]; then
  python=${PYTHON:-python3}
else
  if [ ! -x "$venv/bin/python" ]; then
    say "creating virtual environment $venv"
    "${PYTHON:-python3}" -m venv "$venv"
  fi
  python="$venv/bin/python"
fi
pip() { "$python" -m pip install --disable-pip-version-check -c "$constraints" "$@"; }
say "python: $("$python" --version 2>&1) at $python"

say "step 1/5: build tools (setuptools<82 keeps pkg_resources for mmcv's setup.py; ninja parallelises it)"
pip -q setuptools wheel ninja

say "step 2/5: torch + torchvision (a pair that imports together)"
if "$python" -c "import torch, torchvision" >/dev/null 2>&1; then
  say "  keeping installed pair: $("$python" -c 'import torch, torchvision; print(torch.__version__, torchvision.__version__)')"
else
  say "  installing torch + torchvision from the registry (CUDA build, ~2.6 GB the first time; it runs on CPU too)"
  pip -q -r "$repo/requirements/torch.txt"
fi
torch_version=$("$python" -c 'import torch; print(torch.__version__)')
py_tag=$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')

say "step 3/5: opencv-python-headless (before mmcv, so the GUI build is never pulled)"
pip -q opencv-python-headless

say "step 4/5: mmcv 2.1.0 with compiled ops"
if "$python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" >/dev/null 2>&1; then
  say "  mmcv 2.1.0 with ops already installed"
else
  cache_dir="$wheel_cache/torch-${torch_version}-${py_tag}"
  wheel=$(ls "$cache_dir"/mmcv-2.1.0-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    build=$(mktemp -d)
    say "  no cached wheel for torch $torch_version; building from source (about 10-11 minutes on 2 cores)"
    "$python" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: mmcv==2.1.0 -d "$build"
    tar -xzf "$build"/mmcv-2.1.0.tar.gz -C "$build"
    src="$build/mmcv-2.1.0"
    # torch >= 2.14 headers refuse C++17; mmcv 2.1.0 hard-codes it.
    include=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "include"))')
    if grep -rqs "C++20 or later compatible compiler is required" "$include"; then
      say "  torch headers require C++20: patching mmcv's -std=c++17"
      sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
    fi
    mkdir -p "$cache_dir"
    ( cd "$src" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
        "$python" -m pip wheel --disable-pip-version-check -q --no-build-isolation --no-deps . -w "$build/dist" ) &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do sleep 30; kill -0 "$pid" 2>/dev/null && say "  ... still compiling mmcv ops"; done
    wait "$pid"
    cp "$build"/dist/mmcv-2.1.0-*.whl "$cache_dir/"
    wheel=$(ls "$cache_dir"/mmcv-2.1.0-*.whl | head -n 1)
    rm -rf "$build"
    say "  built and cached $wheel"
  else
    say "  using cached wheel $wheel"
  fi
  pip -q --no-deps "$wheel"
  "$python" -m pip install --disable-pip-version-check -q -c "$constraints" addict packaging Pillow pyyaml yapf
fi

say "step 5/5: OpenMMLab packages, timm, COCO tools and efficientvit_det (editable)"
pip -q -e "$repo[dev]"

"$python" - <<'PY'
import torch, torchvision, mmcv, mmengine, mmdet, mmseg, timm
from mmcv.ops import nms  # noqa: F401  (proves the compiled ops load)
import efficientvit_det  # noqa: F401
print(f"[install] ok: torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, mmdet {mmdet.__version__}, "
      f"mmseg {mmseg.__version__}, timm {timm.__version__}")
PY
say "done; activate with: source ${venv}/bin/activate"
