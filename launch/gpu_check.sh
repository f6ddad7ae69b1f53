#!/usr/bin/env bash
# One-shot check of an accelerator machine: devices, learner, end-to-end trainer, reward scoring and
# actor host cost for the paper preset, one `motif experiment` cell (collect, judge labels, reward model,
# train, evaluate) and one annotation job (vLLM with --llm-model, else the rules judge), in one JSON.
#
#   launch/gpu_check.sh [--out FILE] [--seconds S] [--num-envs N] [--llm-model HF_MODEL]
#
# On GPUs/TPUs: 480 envs (the paper's), S = 60, on 1 device and, if there are several, on all.
# On a CPU-only machine it runs the same steps at small sizes (16 envs, S = 4) so the script itself is
# tested anywhere. Uses `python -m motif_jax.cli` of $PYTHON (default: the checkout's .venv, else
# python3), so it also runs where the package is importable but not installed (PYTHONPATH). About 6
# minutes on one GPU at the defaults.
set -euo pipefail

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "gpu_check.sh: $*" >&2; exit 2; }

out="gpu_check.json" seconds="" num_envs="" llm_model=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="${2:?--out needs a file}"; shift 2 ;;
    --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
    --num-envs) num_envs="${2:?--num-envs needs a number}"; shift 2 ;;
    --llm-model) llm_model="${2:?--llm-model needs a model}"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-}"
[[ -n "$py" ]] || { [[ -x "$root/.venv/bin/python" ]] && py="$root/.venv/bin/python" || py=python3; }
motif() { "$py" -m motif_jax.cli "$@"; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

read -r platform devices < <("$py" -c "import jax; print(jax.default_backend(), jax.local_device_count())")
if [[ "$platform" == cpu ]]; then
  seconds="${seconds:-4}" num_envs="${num_envs:-16}" cell=(cpu.yaml 4096 200 2 30)
else
  seconds="${seconds:-60}" num_envs="${num_envs:-480}" cell=(score.yaml 500000 2000 8 1000)
fi
echo "gpu_check.sh: $platform x $devices, paper preset, $num_envs envs, ${seconds}s per measurement" >&2
"$py" -c "import jax; print('\n'.join(f'  {d.id}: {d.device_kind} ({d.platform})' for d in jax.devices()))" >&2

size=(--preset paper --set "env.num_envs=$num_envs")
step() { echo "gpu_check.sh: $1" >&2; shift; "$@"; }
step "learner, all devices" motif benchmark learner "${size[@]}" --seconds "$seconds" --json "$work/learner_all.json"
step "trainer end to end, all devices" motif benchmark train "${size[@]}" --seconds "$seconds" --json "$work/train_all.json"
if [[ "$devices" -gt 1 ]]; then
  step "learner, 1 device" motif benchmark learner "${size[@]}" --set "learner.devices=[0]" --seconds "$seconds" \
    --json "$work/learner_one.json"
  step "trainer end to end, 1 device" motif benchmark train "${size[@]}" --set "learner.devices=[0]" \
    --seconds "$seconds" --json "$work/train_one.json"
fi
step "reward model scoring" motif benchmark reward --seconds "$seconds" --json "$work/reward.json"
step "actor host cost" motif benchmark actor "${size[@]}" --seconds "$seconds" --json "$work/actor.json"

# An experiment cell: config, train steps, collected pairs, evaluation episodes and their step cap.
cat > "$work/cell.yaml" <<YAML
name: gpu-check
task: score
seeds: [0]
train: {config: $root/configs/${cell[0]}, steps: ${cell[1]}, set: [env.num_envs=$num_envs]}
evaluate: {episodes: ${cell[3]}, num_envs: 2, seed: 100, max_episode_steps: ${cell[4]}}
datasets: {play: {task: score, pairs: ${cell[2]}, seed: 0, num_envs: 8}}
rewards: {judge: {dataset: play, judge: nethack, goal: defaultgoal, preset: tiny, epochs: 2}}
conditions: {ext+int: {reward: judge, extrinsic_coef: 0.1, llm_coef: 0.1}}
YAML
timed() { local t0=$SECONDS; "$@" >&2; echo $((SECONDS - t0)); }
s=$(step "experiment cell" timed motif experiment "$work/cell.yaml" --out "$work/cell" --no-progress)
"$py" -c "import json, sys; r = json.load(open(sys.argv[1])); print(json.dumps({'seconds': $s, 'conditions': r['conditions']}))" \
  "$work/cell/results.json" > "$work/experiment.json"
dataset="$work/cell/shared/datasets/play"
if [[ -n "$llm_model" ]]; then annotate=(--backend vllm --model "$llm_model"); else annotate=(--backend rules); fi
s=$(step "annotation job (${annotate[1]})" timed motif annotate "$dataset" "${annotate[@]}" --goal defaultgoal \
  --name gpu_check)
echo "{\"backend\": \"${annotate[1]}\", \"pairs\": ${cell[2]}, \"seconds\": $s}" > "$work/annotate.json"

"$py" - "$work" "$out" "$platform" <<'PY'
import json, sys
from pathlib import Path

import jax

work, out, platform = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
result = {"platform": platform, "devices": [f"{d.id}: {d.device_kind}" for d in jax.devices()]}
for f in sorted(work.glob("*.json")):
    data = json.loads(f.read_text())
    data.pop("config", None)
    result[f.stem] = data
out.write_text(json.dumps(result, indent=2) + "\n")
summary = {"train_sps": result["train_all"]["train_sps"], "learner_fps": result["learner_all"]["learner_fps"],
           "reward_captions_per_s": result["reward"]["score_captions_per_s"],
           "actor_host_us_per_step": result["actor"]["host_us_per_step"],
           "experiment_cell_s": result["experiment"]["seconds"], "annotate_s": result["annotate"]["seconds"]}
print(json.dumps(summary))
PY
echo "gpu_check.sh: wrote $out" >&2
