#!/usr/bin/env bash
# The reproduction chain of experiments/README.md, end to end on CPU with tiny random models and
# synthetic data (a few minutes). Every step is the real command with small settings; each table's
# files (table1/2/4 .md/.csv/.json + figures) end up under $W/eval/.
#   bash experiments/smoke.sh [WORK_DIR]          (default: outputs/smoke; re-running resumes/skips)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
W=${1:-outputs/smoke}
mkdir -p "$W"
W=$(cd "$W" && pwd)
export LAYERINGDIFF_ROOT=$PWD
P="paths.log_dir=$W/runs paths.cache_dir=$W/cache"
S=64            # image side
M=$W/models     # exported networks
step() { echo "[smoke $(date +%H:%M:%S)] $*"; }

step "1/9 prepare data: synthetic folders in the MAGICK / BG-20k layouts"
[ -d "$W/data/MAGICK" ] || $PY data/make_synthetic.py --out "$W/data" --num-fg 8 --num-bg 8 --fg-size 128 >/dev/null

step "2/9 shards (train + val) from those folders"
for split in train val; do
  [ -f "$W/shards/$split/manifest.json" ] && continue
  n=$([ $split = train ] && echo 8 || echo 2)
  $PY data/make_shards.py --out "$W/shards" --split $split --num $n --size $S \
    --foregrounds "$W/data/MAGICK" --backgrounds "$W/data/BG-20k" --fractions 0.5,0.5,0 >/dev/null
done
D="data=shards data.dataset.root=$W/shards data.size=$S data.num_workers=0 data.batch_size=2"

step "3/9 FBDD latent cache"
[ -f "$W/latents/cache_info.json" ] || $PY data/encode_latents.py --out "$W/latents" --device cpu experiment=fbdd_smoke $D $P >/dev/null

step "4/9 train FBDD foreground and background UNets"
for layer in foreground background; do
  [ -f "$M/fbdd_$layer/fbdd_config.json" ] && continue
  $PY train.py experiment=fbdd_smoke $D "data.sidecars=[$W/latents]" model.layer=$layer \
    trainer.max_steps=4 trainer.val_check_interval=4 callbacks.model_checkpoint.every_n_train_steps=4 \
    export_dir="$M/fbdd_$layer" hydra.run.dir="$W/runs/fbdd_$layer" $P >/dev/null
done

step "5/9 cache FBDD outputs (HFA inputs)"
[ -f "$W/fbdd_outputs/cache_info.json" ] || $PY data/cache_fbdd_outputs.py --out "$W/fbdd_outputs" --mode fbdd --device cpu --no-progress \
  --fbdd-foreground "$M/fbdd_foreground" --fbdd-background "$M/fbdd_background" --steps 2 $D $P >/dev/null

step "6/9 train FAN and BAN"
for layer in foreground background; do
  name=$([ $layer = foreground ] && echo fan || echo ban)
  [ -f "$M/$name/config.json" ] && continue
  $PY train.py experiment=hfa_smoke $D "data.sidecars=[$W/fbdd_outputs]" model.layer=$layer model.input_mode=sidecar \
    trainer.max_steps=4 trainer.val_check_interval=4 callbacks.model_checkpoint.every_n_train_steps=4 \
    export_dir="$M/$name" hydra.run.dir="$W/runs/$name" $P >/dev/null
done

LD="layering"
step "7/9 generate layered images for 2 prompts (tiny SDXL, foreground determination, FBDD + HFA)"
$PY evaluate.py eval=generate eval.prompts=data/prompts/quick16.jsonl eval.limit=2 hydra.run.dir="$W/eval/generate" \
  "eval.infer_overrides=['pipeline=tiny','layering=layeringdiff','height=$S','width=$S','num_inference_steps=2','progress=false','$LD.fbdd_foreground=$M/fbdd_foreground','$LD.fbdd_background=$M/fbdd_background','$LD.fan=$M/fan','$LD.ban=$M/ban']" \
  $P metrics.build_tiny=true >/dev/null

step "8/9 Tables 1 and 2 on the generated folders"
TF=$W/cache/tiny/foreground
$PY evaluate.py eval=table1 "+eval.methods.ours=$W/eval/generate/samples" hydra.run.dir="$W/eval/table1" \
  eval.reference.fg="$W/data/MAGICK/images" eval.reference.bg="$W/data/BG-20k" eval.kid_subsets=10 \
  eval.segmenter.grounding_dino="$TF/grounding_dino" eval.segmenter.sam="$TF/sam" eval.segmenter.box_threshold=0.0 eval.segmenter.text_threshold=0.0 \
  eval.progress=false $P metrics.build_tiny=true >/dev/null
$PY evaluate.py eval=table2 "+eval.methods.ours=$W/eval/generate/samples" hydra.run.dir="$W/eval/table2" $P >/dev/null

step "9/9 Table 4 (closed-form matting; LayeringDiff, Germer et al., Germer + inpainting) on 4 synthetic test composites"
$PY evaluate.py eval=table4_offline eval.dataset.num_samples=4 eval.dataset.size=$S '+eval.dataset.kernel_range=[1,5]' eval.figure_samples=2 \
  "eval.methods=[layeringdiff,germer,germer_inpaint,copy]" \
  eval.layerings.layeringdiff.fbdd_foreground="$M/fbdd_foreground" eval.layerings.layeringdiff.fbdd_background="$M/fbdd_background" \
  eval.layerings.layeringdiff.fan="$M/fan" eval.layerings.layeringdiff.ban="$M/ban" eval.layerings.layeringdiff.num_inference_steps=2 eval.progress=false \
  hydra.run.dir="$W/eval/table4" $P metrics.build_tiny=true >/dev/null

for t in table1 table2 table4; do cat "$W/eval/$t/$t.md"; echo; done
step "done: $W/eval/{table1,table2,table4}"
