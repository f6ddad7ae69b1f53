#!/usr/bin/env bash
# Run a motif command on this machine: one process that drives every local GPU (or the CPU).
#
#   launch/local.sh [--gpus 0,1,...] [--cpu] [--fake-devices N] -- COMMAND...
#   e.g. launch/local.sh -- motif train --config configs/score.yaml
#
# --gpus restricts the run to those GPUs (CUDA_VISIBLE_DEVICES); --cpu forces the CPU backend;
# --fake-devices N splits the CPU into N devices to try the multi-device code paths without GPUs.
set -euo pipefail

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "local.sh: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --gpus) export CUDA_VISIBLE_DEVICES="${2:?--gpus needs a list like 0,1}"; shift 2 ;;
    --cpu) export JAX_PLATFORMS=cpu; shift ;;
    --fake-devices)
      [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || die "--fake-devices needs a positive integer"
      export JAX_PLATFORMS=cpu XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
[[ $# -gt 0 ]] || die "no command given; e.g. launch/local.sh -- motif train --config configs/score.yaml"

# A single process owns every device: make sure no multi-host settings leak in from the shell.
unset MOTIF_COORDINATOR MOTIF_NUM_PROCESSES MOTIF_PROCESS_ID MOTIF_DISTRIBUTED
echo "local.sh: ${JAX_PLATFORMS:-default backend}${CUDA_VISIBLE_DEVICES:+, GPUs $CUDA_VISIBLE_DEVICES}: $*" >&2
exec "$@"
