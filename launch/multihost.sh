#!/usr/bin/env bash
# Start this host's process of a multi-host JAX run (N hosts x G local GPUs, one process per host).
#
#   launch/multihost.sh [--coordinator HOST:PORT] [--num-processes N] [--process-id I] -- COMMAND...
#
# Every host runs the same COMMAND (e.g. `motif train --config configs/score.yaml`); only the
# process id differs. Without flags the values come from SLURM (SLURM_PROCID, SLURM_NTASKS and the
# first host of SLURM_JOB_NODELIST, port $MOTIF_PORT or 12355). The command reads them through
# MOTIF_COORDINATOR / MOTIF_NUM_PROCESSES / MOTIF_PROCESS_ID and calls jax.distributed.initialize()
# (motif_jax.parallel.maybe_initialize_distributed). Each process drives all GPUs visible to it.
set -euo pipefail

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "multihost.sh: $*" >&2; exit 2; }

coordinator="" num_processes="" process_id=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --coordinator) coordinator="${2:?--coordinator needs HOST:PORT}"; shift 2 ;;
    --num-processes) num_processes="${2:?--num-processes needs a number}"; shift 2 ;;
    --process-id) process_id="${2:?--process-id needs a number}"; shift 2 ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
[[ $# -gt 0 ]] || die "no command given; e.g. launch/multihost.sh -- motif train --config configs/score.yaml"

if [[ -n "${SLURM_JOB_ID:-}" ]]; then
  : "${num_processes:=${SLURM_NTASKS:-}}"
  : "${process_id:=${SLURM_PROCID:-}}"
  if [[ -z "$coordinator" && -n "${SLURM_JOB_NODELIST:-}" ]]; then
    head_node="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
    coordinator="${head_node}:${MOTIF_PORT:-12355}"
  fi
fi
[[ -n "$coordinator" ]] || die "coordinator unknown: pass --coordinator HOST:PORT (or run under SLURM)"
[[ "$num_processes" =~ ^[0-9]+$ && "$num_processes" -ge 1 ]] || die "--num-processes must be a positive integer, got '${num_processes}'"
[[ "$process_id" =~ ^[0-9]+$ && "$process_id" -lt "$num_processes" ]] || die "--process-id must be in [0, ${num_processes}), got '${process_id}'"

export MOTIF_COORDINATOR="$coordinator" MOTIF_NUM_PROCESSES="$num_processes" MOTIF_PROCESS_ID="$process_id"
echo "multihost.sh: process ${process_id}/${num_processes}, coordinator ${coordinator}: $*" >&2
exec "$@"
