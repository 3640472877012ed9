#!/usr/bin/env bash
# The GPU figures of issues 3 and 5, as run on a lent GPU machine (the workplace's `device` tool),
# which has PyTorch, transformers and sentence-transformers but not model2vec, tokenlearn or datasets,
# and cannot reach the Hub. The project is not installed there, so the repository goes on PYTHONPATH
# (the scripts import `core` and `bench._common`). It carries (ignored by git, built by bench/gpu_carry.sh):
#   .whl/                 model2vec[distill], tokenlearn, datasets, sentence-transformers 6.2 (6.0.1 there
#                         fails encode(output_value=None)) and their missing needs
#   .carry/minilm-fp16    the embedded MiniLM teacher in float16 (what fits the 64 MiB limit)
#   .carry/corpus.tar.xz  the bench corpus; .carry/eval.tar.xz  the development eval sets
# Usage: bench/gpu_figures.sh [speed|quality|alongside|all]   (results and logs go to $OUT, else bench/results)
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
OUT=${OUT:-bench/results}
PY=${PYTHON:-python3}
if [ -d .whl ] && [ -z "${SKIP_WHEELS:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} || exit 1
fi
DATA=${DATA:-/tmp/distillery-gpu}
mkdir -p "$DATA" && tar -C "$DATA" -xJf "${CORPUS_TAR:-.carry/corpus.tar.xz}" && tar -C "$DATA" -xJf .carry/eval.tar.xz || exit 1
export DISTILLERY_EVAL_DIR=$DATA/eval DISTILLERY_DATA_DIR=$DATA/var
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
step=${1:-all}
if [ "$step" = speed ] || [ "$step" = all ]; then
  timeout "${SPEED_TIMEOUT:-240}" $PY bench/featurize_speed.py --teacher .carry/minilm-fp16 --corpus-dir "$DATA/corpus" \
    --texts "${TEXTS:-20000}" --sweep-texts "${SWEEP:-4096}" --random-300m ${BATCHES:+--batch-sizes $BATCHES} \
    --out "$OUT/featurize_speed.json" > "$OUT/featurize_speed.log" 2>&1
  echo "featurize_speed rc=$?"; grep -v "it/s\]\|s/it\]" "$OUT/featurize_speed.log" | tail -40
fi
if [ "$step" = quality ] || [ "$step" = all ]; then
  timeout "${QUALITY_TIMEOUT:-420}" $PY bench/quality.py --corpus-dir "$DATA/corpus" --teacher .carry/minilm-fp16 \
    --work-dir "$DATA/q" ${TASKS:+--tasks $TASKS} --out "$OUT/quality.json" > "$OUT/quality.log" 2>&1
  echo "quality rc=$?"; grep -v "it/s\]\|s/it\]" "$OUT/quality.log" | tail -45
fi
if [ "$step" = alongside ] || [ "$step" = all ]; then
  timeout "${ALONGSIDE_TIMEOUT:-300}" $PY bench/alongside.py --teacher .carry/minilm-fp16 --corpus-dir "$DATA/corpus" \
    --texts "${ALONGSIDE_TEXTS:-100000}" --out "$OUT/alongside.json" > "$OUT/alongside.log" 2>&1
  echo "alongside rc=$?"; grep -v "it/s\]\|s/it\]" "$OUT/alongside.log" | tail -20
fi
