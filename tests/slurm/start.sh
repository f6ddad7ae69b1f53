#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (munged, slurmctld, slurmd from Debian's slurm-wlm and
# munge packages, as root), for `make test-cluster`. State and logs go under DIR (default: a new temp
# folder); prints `export SLURM_CONF=DIR/slurm.conf`, which every SLURM client command needs.
#
#   tests/slurm/start.sh [DIR]        stop: tests/slurm/start.sh --stop DIR
set -euo pipefail
die() { echo "slurm/start.sh: $*" >&2; exit 2; }

if [[ "${1:-}" == --stop ]]; then
  dir="${2:?--stop needs DIR}"
  pids=(); for f in "$dir"/*.pid; do [[ -f "$f" ]] && pids+=("$(cat "$f")"); done
  kill "${pids[@]}" 2>/dev/null || true
  alive() { for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && return 0; done; return 1; }
  for _ in $(seq 20); do alive || exit 0; sleep 0.5; done   # until every daemon is gone, not just the first
  kill -9 "${pids[@]}" 2>/dev/null || true   # a daemon that ignored SIGTERM would hold the ports
  exit 0
fi
[[ $(id -u) == 0 ]] || die "needs root (slurmd runs jobs as their users)"
command -v slurmctld >/dev/null || die "no slurmctld: apt-get install -y --no-install-recommends slurm-wlm munge"
for port in "${SLURMCTLD_PORT:-6817}" "${SLURMD_PORT:-6818}"; do
  ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "port $port is in use (a cluster left running?); stop it first"
done
dir="$(realpath -m "${1:-$(mktemp -d -t motif-slurm.XXXXXX)}")"
mkdir -p "$dir"/{state,spool,munge}
host="$(hostname -s)"
read -r cpus mem < <(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*RealMemory=\([0-9]*\).*/\1 \2/p')

# munge: its own key and socket, so nothing of the machine's is used or changed.
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
socket="$dir/munge/munge.socket"
munged --force --key-file "$dir/munge/munge.key" --socket "$socket" --pid-file "$dir/munged.pid" \
  --log-file "$dir/munged.log" --seed-file "$dir/munge/seed"

cat > "$dir/slurm.conf" <<CONF
ClusterName=motif
SlurmctldHost=$host
SlurmUser=root
SlurmctldPort=${SLURMCTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"
slurmctld
slurmd
for _ in $(seq 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qx idle; then echo "export SLURM_CONF=$SLURM_CONF"; exit 0; fi
  sleep 0.5
done
die "the node did not come up; see $dir/slurmctld.log and $dir/slurmd.log"
