#!/usr/bin/env bash
# Installs edgespec with every extra into ./.venv, CPU PyTorch included, without torchvision.
#
#   tools/setup.sh                 # idempotent; re-run after pulling
#
# Environment knobs (for machines other than the reference one):
#   PYTHON=python3.11              interpreter that creates the venv
#   EDGESPEC_TORCH_INDEX=URL       e.g. https://download.pytorch.org/whl/cpu where PyPI's default
#                                  torch wheel would be a CUDA build
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${EDGESPEC_TORCH_SPEC:-torch==2.13.0}

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if [ ! -x .venv/bin/python ]; then
  step "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
PIP=("$VPY" -m pip install --disable-pip-version-check -q)

# 1. CPU PyTorch first and pinned: any later `torch>=x` requirement is then already satisfied,
#    so nothing pulls a multi-GB CUDA build.
if ! "$VPY" -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else 1)" 2>/dev/null; then
  step "installing CPU PyTorch ($TORCH_SPEC)"
  if [ -n "${EDGESPEC_TORCH_INDEX:-}" ]; then
    "${PIP[@]}" "$TORCH_SPEC" --index-url "$EDGESPEC_TORCH_INDEX"
  else
    "${PIP[@]}" "$TORCH_SPEC"
  fi
fi
"$VPY" -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else 1)" || {
  echo "error: the installed torch is a CUDA build; re-run with EDGESPEC_TORCH_INDEX=https://download.pytorch.org/whl/cpu" >&2
  exit 1
}

# 2. Build requirements, then edgespec itself (editable: Python from the checkout, the native
#    library compiled by CMake into build/ and installed into site-packages/edgespec).
step "installing build tools and edgespec[export,bench,test]"
"${PIP[@]}" "scikit-build-core>=0.10" "openvino==2026.4.1"
"${PIP[@]}" --no-build-isolation -e ".[export,bench,test]"

# 3. optimum-intel without its dependencies: it hard-requires torchvision, which on PyPI pulls a
#    CUDA torch and, beside the CPU torch, fails to import ("operator torchvision::nms does not
#    exist") and breaks transformers. Its other requirements are in the `export` extra.
"${PIP[@]}" --no-deps "optimum-intel==2.2.0"

# 4. Optional: Debian's chromium, which tests/test_profile.py uses to render the profile's HTML
#    report headless. Only where apt and root are available and no chromium is installed; a
#    failure is not fatal (that test then skips and says why).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  step "installing chromium (headless rendering of the profile report in tests)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ||
    echo "note: chromium did not install; tests/test_profile.py's browser test will skip" >&2
fi

step "checking the install"
"$VPY" - <<'PY'
import importlib.util, sys
assert importlib.util.find_spec("torchvision") is None, "torchvision is installed; `pip uninstall torchvision`"
from optimum.exporters.openvino import main_export  # noqa: F401  (the export path imports)
import edgespec._native as n
v = n.versions()
print(f"edgespec ready: native runtime on OpenVINO {v['openvino']}, devices {', '.join(v['devices'])}")
PY
