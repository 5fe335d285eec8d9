#!/usr/bin/env bash
# One GPU session (about 8 minutes), run from the repo root on a lent H100/H200 whose image has CUDA torch and
# transformers but neither our bundled model package nor seqeval. What must travel, prepared on the dev machine in
# the ignored folder .gpu/ (see BENCHMARKS.md "GPU"):
#   .gpu/minilm   the bundled all-MiniLM-L6-v2 folder, weights stored fp16 to fit the 64 MiB carry limit
#                 (the engine loads every checkpoint as fp32 master weights, so nothing is lost for training)
#   .gpu/data     sst2/ mrpc/ conll2003/ from ../shared/data
#   .gpu/site     seqeval (pure Python)
# Steps, most wanted first, each under its own hard timeout so one overrun cannot eat the rest:
#   1. the engine's defaults on the full data (issue 2's --full rows, issue 6's "defaults that win");
#   2. GPU speed levers (bench/gpu_speed.py);
#   3. the Trainer vs the engine at equal hyper-parameters, 1 epoch (bench/train_speed.py --gpu);
#   4. the Trainer reference rows for MRPC and CoNLL;
#   5. torch.compile, last: its compile time is the most likely to overrun.
set -u
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-bench/out/gpu}
mkdir -p "$OUT" bench/out
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH=$PWD/.gpu/site${PYTHONPATH:+:$PYTHONPATH} FINETUNER_DATA=$PWD/.gpu/data
M=$PWD/.gpu/minilm
PY=${PYTHON:-python3}
START=$(date +%s)
step() {  # step NAME TIMEOUT_S COMMAND...: run with a hard timeout, log to $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  echo "[$(( $(date +%s) - START ))s] $name (limit ${limit}s)" | tee -a "$OUT/session.txt"
  timeout -k 5 "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "[$(( $(date +%s) - START ))s] $name exit $?" | tee -a "$OUT/session.txt"
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__,
  "cuda", torch.cuda.is_available())'; } >> "$OUT/session.txt" 2>&1

step quality_ours 170 $PY bench/quality.py --full --device cuda --no-reference --model "$M" \
  --rows sst2,mrpc_cross,mrpc_concat,conll,sst2_frozen
step gpu_speed 120 $PY bench/gpu_speed.py --model "$M" --variants b256_bf16,b256_fp32,bertbase_b256_bf16
step train_speed 120 $PY bench/train_speed.py --gpu --epochs 1 --no-frozen --model "$M"
step quality_reference 80 $PY bench/quality.py --full --device cuda --model "$M" --rows mrpc_cross,conll
cp bench/out/gpu_speed.json bench/out/gpu_speed_main.json 2>/dev/null
step gpu_compile 50 $PY bench/gpu_speed.py --model "$M" --variants b256_bf16_compile
tar -czf "$OUT/json.tar.gz" bench/out/*.json 2>/dev/null
echo "[$(( $(date +%s) - START ))s] done" | tee -a "$OUT/session.txt"
