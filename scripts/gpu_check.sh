#!/usr/bin/env bash
# The prepared GPU check of issue 17, for a machine with one GPU and no network (torch, transformers, accelerate and
# peft installed there; alignlab's other dependencies and TRL carried as wheels in WHEELS_DIR). About 8 minutes on
# one H100: alignlab's SFT and DPO against TRL's on the same random ~1.1B Llama and data, bf16 autocast over fp32
# weights on both sides, tokens/s, peak GPU memory and MFU over the measured bf16 matmul peak, in one table
# (benchmarks/bench_training.py --device cuda). Exits non-zero on any error. Not yet run on a GPU: no session that
# wrote it was lent one (docs/scale.md says what has run where).
#
#   WHEELS_DIR=shared/wheels bash scripts/gpu_check.sh 2>&1 | tee gpu_check.log
# WHEELS_DIR holds trl and datasets (and their own dependencies not already installed: pyarrow, dill, xxhash,
# multiprocess), e.g. from `pip download trl datasets -d wheels` on a machine with the same Python.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [ -n "${WHEELS_DIR:-}" ]; then
  "$PY" -m pip install --quiet --no-index --find-links "$WHEELS_DIR" trl datasets
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"          # alignlab from this checkout, nothing installed
"$PY" - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA GPU visible: this check is for a GPU machine"
print(f"GPU: {torch.cuda.get_device_name(0)} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB), "
      f"torch {torch.__version__}, bf16 supported: {torch.cuda.is_bf16_supported()}")
PY
# SFT and DPO, 1 round of 8 steps (2 not timed) per run, one process, every run a fresh process.
"$PY" benchmarks/bench_training.py --device cuda --precision bf16 --shape 1b --rounds 1 --steps 8 --allocator glibc \
  --cases sft dpo --runs alignlab:sft: trl:sft: alignlab:dpo: trl:dpo:fast --strict
echo "gpu_check: every run finished"
