#!/usr/bin/env bash
# LayeringDiff-mini (docs/mini.md): the whole method trained from scratch on CPU at 64 px on the
# procedural generator, then Table 4 on 200 held-out test composites. Every step is the real
# command (train.py, data/cache_fbdd_outputs.py, evaluate.py) with the mini experiment configs.
#   bash experiments/mini.sh [OUT]              (default outputs/mini; a rerun skips finished stages)
# Per stage: a progress line, its log in OUT/logs/, wall / user / sys seconds and the load average
# in OUT/times/<stage>.txt. Environment: PYTHON (default .venv/bin/python), MINI_STEPS (sampler
# steps, default 20), MINI_TEST (test composites, default 200), MINI_THREADS (threads of the
# single stages, default 2), MINI_FAST=1 (a few training steps
# per stage, to check the chain; its numbers mean nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
W=${1:-outputs/mini}
mkdir -p "$W/logs" "$W/times"
W=$(cd "$W" && pwd)
export LAYERINGDIFF_ROOT=$PWD
export OMP_NUM_THREADS=${MINI_THREADS:-2}   # single stages; the paired ones below use 1 thread each
P="paths.log_dir=$W/runs paths.cache_dir=$W/cache"
M=$W/models
S=${MINI_STEPS:-20}
N=${MINI_TEST:-200}
FAST=()
if [ "${MINI_FAST:-0}" = 1 ]; then
  FAST=(trainer.max_steps=4 trainer.val_check_interval=4 trainer.log_every_n_steps=1 data.num_train=64)
fi
HFA_DATA=(experiment=mini_hfa_ban)
[ "${MINI_FAST:-0}" = 1 ] && HFA_DATA+=(data.num_train=64)
step() { echo "[mini $(date +%H:%M:%S)] $*"; }

# run NAME CMD...: run a stage, log to logs/NAME.log, record its times; stop the chain if it fails.
run() {
  local name=$1 t="$W/times/$1.txt"
  shift
  if ! /usr/bin/time -f "wall=%e user=%U sys=%S" -o "$t.tmp" "$@" >"$W/logs/$name.log" 2>&1; then
    tail -n 5 "$W/logs/$name.log" >&2
    step "stage $name FAILED (log: $W/logs/$name.log)" >&2
    rm -f "$t.tmp"
    exit 1
  fi
  echo "load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)" >>"$t.tmp"
  mv "$t.tmp" "$t"
  step "  $name done: $(tr '\n' ' ' <"$t")"
}
skip() { step "  $1: output exists, skipped"; }

step "start: OUT=$W, $(nproc --all) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

step "1/7 train the autoencoder (AutoencoderKL, factor 4) on generator images"
if [ -f "$M/vae/config.json" ]; then skip vae; else
  run vae $PY train.py experiment=mini_vae export_dir="$M/vae" hydra.run.dir="$W/runs/vae" $P "${FAST[@]}"
fi
if [ -f "$W/vae_psnr.json" ]; then skip vae_psnr; else
  run vae_psnr $PY -m layeringdiff.mini vae-psnr --vae "$M/vae" --out "$W/vae_psnr.json"
fi

step "2/7 mini SD2-inpainting-style repo around the trained VAE (small random UNet, v-prediction)"
if [ -f "$M/sd2_mini/model_index.json" ]; then skip repo; else
  run repo $PY -m layeringdiff.mini repo --vae "$M/vae" --out "$M/sd2_mini"
fi

step "3/7 train FBDD foreground and background (from_sd2_inpainting on the mini repo)"
# F and B train side by side, one thread each (two single-threaded jobs use 2 cores better than
# one job's 2 threads, most of all on a shared machine).
pair() {  # pair NAME1 NAME2: run both stages' commands (in $CMD_<name>) in parallel; fail if either does
  local pids=() name
  for name in "$@"; do
    local var="CMD_$name"
    ( OMP_NUM_THREADS=1 run "$name" ${!var} ) &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || exit 1; done
}
todo=()
for short in fg bg; do
  layer=$([ $short = fg ] && echo foreground || echo background)
  if [ -f "$M/fbdd_$layer/fbdd_config.json" ]; then skip "fbdd_$short"; continue; fi
  declare "CMD_fbdd_$short=$PY train.py experiment=mini_fbdd_$short model.pretrained=$M/sd2_mini \
    model.null_prompt_cache=$W/cache/null_prompt export_dir=$M/fbdd_$layer hydra.run.dir=$W/runs/fbdd_$short $P ${FAST[*]}"
  todo+=("fbdd_$short")
done
[ ${#todo[@]} = 0 ] || pair "${todo[@]}"

step "4/7 cache the mini FBDD outputs on the HFA training set ($S DDIM steps)"
if [ -f "$W/fbdd_outputs.done" ]; then skip fbdd_outputs; else
  run fbdd_outputs $PY data/cache_fbdd_outputs.py --out "$W/fbdd_outputs" --mode fbdd --device cpu --no-progress \
    --fbdd-foreground "$M/fbdd_foreground" --fbdd-background "$M/fbdd_background" --steps "$S" --batch-size 32 \
    "${HFA_DATA[@]}" $P
  touch "$W/fbdd_outputs.done"
fi

step "5/7 train FAN and BAN on those outputs"
todo=()
for name in fan ban; do
  if [ -f "$M/$name/config.json" ]; then skip "$name"; continue; fi
  declare "CMD_$name=$PY train.py experiment=mini_hfa_$name data.sidecars=[$W/fbdd_outputs] export_dir=$M/$name \
    hydra.run.dir=$W/runs/$name $P ${FAST[*]}"
  todo+=("$name")
done
[ ${#todo[@]} = 0 ] || pair "${todo[@]}"

step "6/7 Table 4 on $N held-out synthetic test composites (closed-form matting; layeringdiff, layeringdiff_projected, germer, germer_inpaint, copy)"
LD=eval.layerings.layeringdiff
if [ -f "$W/table4/table4.json" ]; then skip table4; else
  run table4 $PY evaluate.py eval=table4_offline eval.dataset.num_samples="$N" eval.dataset.size=64 \
    '+eval.dataset.kernel_range=[1,5]' eval.figure_samples=4 eval.progress=false \
    "eval.methods=[layeringdiff,layeringdiff_projected,germer,germer_inpaint,copy]" \
    $LD.fbdd_foreground="$M/fbdd_foreground" $LD.fbdd_background="$M/fbdd_background" \
    $LD.fan="$M/fan" $LD.ban="$M/ban" $LD.num_inference_steps="$S" \
    ${LD}_projected.fbdd_foreground="$M/fbdd_foreground" ${LD}_projected.fbdd_background="$M/fbdd_background" \
    ${LD}_projected.fan="$M/fan" ${LD}_projected.ban="$M/ban" ${LD}_projected.num_inference_steps="$S" \
    metrics.lpips.allow_random_backbone=true hydra.run.dir="$W/table4" $P
fi

step "7/7 loss curves, sample figure, summary"
csv() { echo "$1=$W/runs/$2/csv/version_0/metrics.csv"; }
run report bash -c "$PY -m layeringdiff.mini plot --out '$W/loss_curves.png' $(csv vae vae) $(csv fbdd_fg fbdd_fg) \
  $(csv fbdd_bg fbdd_bg) $(csv fan fan) $(csv ban ban) \
  && $PY -m layeringdiff.mini figure --table4 '$W/table4' --out '$W/samples.png' \
  && $PY -m layeringdiff.mini summary --out '$W'"
cat "$W/table4/table4.md"
step "done: $W/table4, $W/loss_curves.png, $W/samples.png, $W/summary.json"
