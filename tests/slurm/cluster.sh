#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests: munge, slurmctld and
# slurmd on loopback, state and logs under one directory, no systemd.
#   tests/slurm/cluster.sh start DIR   install slurm-wlm + munge if missing (root), start, wait until the node is idle
#   tests/slurm/cluster.sh stop DIR    stop the daemons started from DIR
# Clients find the cluster with SLURM_CONF=DIR/slurm.conf.
source "$(dirname "$0")/../lib.sh"
cmd=${1:-} dir=${2:-}
[[ -n $cmd && -n $dir ]] || usage
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf=$dir/slurm.conf

stop() {
  for d in slurmd slurmctld; do
    [[ -f $dir/$d.pid ]] && kill "$(cat "$dir/$d.pid")" 2>/dev/null || true
  done
  sleep 1
  for d in slurmd slurmctld; do
    [[ -f $dir/$d.pid ]] && kill -9 "$(cat "$dir/$d.pid")" 2>/dev/null || true
    rm -f "$dir/$d.pid"
  done
}

case "$cmd" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "cluster.sh: unknown command '$cmd' (start, stop)" >&2; exit 2 ;;
esac

[[ $(id -u) -eq 0 ]] || { echo "cluster.sh: starting Slurm daemons needs root" >&2; exit 77; }
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi

# munge: a key, and the daemon (as the munge user, as Debian runs it). A munged
# that does not answer (its socket gone, e.g. after the package was removed and
# installed again under it) is stopped and started afresh.
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  pkill -x munged && sleep 1
  [[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile /etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged
fi

host=$(hostname -s)
mkdir -p "$dir/state" "$dir/spool"
# The node claims more CPUs than this machine has (config_overrides): MPI
# tests oversubscribe on purpose.
cat >"$conf" <<CONF
ClusterName=calmtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
MinJobAge=600
KillWait=10
OverTimeLimit=0
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=8 Sockets=1 CoresPerSocket=8 ThreadsPerCore=1 RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$conf
stop
/usr/sbin/slurmctld -f "$conf" -i
/usr/sbin/slurmd -f "$conf" -N "$host"
for _ in $(seq 60); do
  state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
  [[ $state == idle* ]] && { echo "slurm: node $host $state (SLURM_CONF=$conf)"; exit 0; }
  sleep 1
done
echo "cluster.sh: node did not become idle (state '${state:-none}'); logs in $dir" >&2
tail -n 5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2
exit 1
