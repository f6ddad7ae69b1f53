#!/usr/bin/env bash
# TPU VM or pod slice: every worker runs the same command; JAX finds its peers itself.
#
# From your workstation (runs this script on all workers of the TPU VM over gcloud ssh):
#   launch/tpu.sh --tpu NAME --zone ZONE [--project P] [--dir motif_jax] -- motif train --config configs/score.yaml
# On each worker (what the above runs there):
#   launch/tpu.sh -- motif train --config configs/score.yaml
#
# Sets MOTIF_DISTRIBUTED=auto so the command calls jax.distributed.initialize() with TPU autodetection.
set -euo pipefail

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "tpu.sh: $*" >&2; exit 2; }

tpu="" zone="" project="" dir="motif_jax"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tpu) tpu="${2:?--tpu needs a TPU VM name}"; shift 2 ;;
    --zone) zone="${2:?--zone needs a zone}"; shift 2 ;;
    --project) project="${2:?--project needs a project id}"; shift 2 ;;
    --dir) dir="${2:?--dir needs the checkout folder on the workers}"; shift 2 ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
[[ $# -gt 0 ]] || die "no command given; e.g. launch/tpu.sh -- motif train --config configs/score.yaml"

if [[ -n "$tpu" ]]; then
  [[ -n "$zone" ]] || die "--tpu needs --zone"
  remote="cd $(printf '%q' "$dir") && { [[ ! -f .venv/bin/activate ]] || source .venv/bin/activate; } && launch/tpu.sh --$(printf ' %q' "$@")"
  exec gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" ${project:+--project "$project"} --worker=all --command "$remote"
fi

unset MOTIF_COORDINATOR MOTIF_NUM_PROCESSES MOTIF_PROCESS_ID
export MOTIF_DISTRIBUTED=auto
echo "tpu.sh: worker ${TPU_WORKER_ID:-?} (MOTIF_DISTRIBUTED=auto): $*" >&2
exec "$@"
