#!/usr/bin/env bash
# A one-node Slurm cluster (slurmctld + slurmd + munge, on this machine) for the tests of
# sharded runs: installs Debian's slurm-wlm and munge when missing, writes a throwaway config
# and starts the daemons unless the cluster already answers with its node idle or busy (all
# idempotent).
#
#   scripts/slurm.sh start   start (or reuse) the cluster; prints its slurm.conf on stdout
#                            (export it as SLURM_CONF for sbatch, squeue, scancel)
#   scripts/slurm.sh stop    stop the daemons (by their pid files)
#   scripts/slurm.sh conf    print the slurm.conf path
#
# TAPEDECK_SLURM_DIR (default /tmp/tapedeck-slurm) holds the config, state, spool, logs and
# munge's key and socket; TAPEDECK_SLURM_PORT (default 16817) is slurmctld's port, slurmd
# takes the next one. The cluster is for tests: one node, no accounting.
#
# What it takes to run Slurm 22.05 (Debian 12) in a container-like machine, found here:
# - PID 1 is not systemd: the daemons are started by hand and stopped by their pid files.
# - No cgroups to manage: ProctrackType=proctrack/linuxproc and TaskPlugin=task/none (the
#   cgroup plugins fail to start here); JobAcctGatherType none.
# - Everything runs as root (SlurmUser=root, SlurmdUser=root); munged runs as `munge`.
# - munge: its directory must be owned by munge with mode 711 (with 700 munged refuses its
#   socket), the key 600; the socket path goes to Slurm as AuthInfo=socket=...
# - The node is `localhost` (slurmd -N localhost), whatever the hostname; CPUs=2 and a small
#   RealMemory. Without DefMemPerCPU each job takes all the node's memory and jobs run one
#   at a time. ReturnToService=2 brings the node back after a restart without scontrol.
# - Non-default ports, so a cluster of the machine's own (6817/6818) is left alone.
# - slurmctld starts jobs every few seconds (its scheduling pass): poll squeue, don't sleep.
set -euo pipefail
BASE="${TAPEDECK_SLURM_DIR:-/tmp/tapedeck-slurm}"
PORT="${TAPEDECK_SLURM_PORT:-16817}"
CONF="$BASE/slurm.conf"
MUNGE="$BASE/munge"
export SLURM_CONF="$CONF"

install() {
    [ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] && [ -x /usr/sbin/munged ] && return
    echo "slurm.sh: installing slurm-wlm and munge (apt)" >&2
    if [ "$(id -u)" != 0 ]; then
        echo "slurm.sh: slurmctld is missing; run as root or: apt-get install slurm-wlm munge" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >&2 \
        || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >&2; }
}

# The node's state as sinfo reports it ("idle", "mixed", "allocated", "down*", ...), or "".
node_state() {
    [ -f "$CONF" ] || return 0
    timeout 5 sinfo -h -n localhost -o %T 2>/dev/null | head -1 || true
}

up() {
    case "$(node_state)" in
        idle | mixed | allocated | completing) return 0 ;;
        *) return 1 ;;
    esac
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pid() {
    local f=$1
    [ -f "$f" ] || return 0
    local pid
    pid=$(cat "$f")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}

stop() {
    stop_pid "$BASE/slurmd.pid"
    stop_pid "$BASE/slurmctld.pid"
    stop_pid "$MUNGE/munged.pid"
}

configure() {
    mkdir -p "$BASE/state" "$BASE/spool" "$BASE/log" "$MUNGE"
    chown munge:munge "$MUNGE"
    chmod 711 "$MUNGE"
    if [ ! -f "$MUNGE/munge.key" ]; then
        mungekey --create --keyfile="$MUNGE/munge.key" >&2
        chown munge:munge "$MUNGE/munge.key"
        chmod 600 "$MUNGE/munge.key"
    fi
    cat >"$CONF" <<EOF
ClusterName=tapedeck
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE/munge.socket.2
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmctldPidFile=$BASE/slurmctld.pid
SlurmdPidFile=$BASE/slurmd.pid
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
MaxArraySize=10001
NodeName=localhost CPUs=2 RealMemory=8000 State=UNKNOWN
PartitionName=tapedeck Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
    install
    if up; then
        echo "$CONF"
        return
    fi
    stop
    # A clean cluster: no jobs left from an earlier one.
    rm -rf "$BASE/state" "$BASE/spool"
    configure
    if ! alive "$MUNGE/munged.pid"; then
        runuser -u munge -- munged --socket="$MUNGE/munge.socket.2" --key-file="$MUNGE/munge.key" \
            --pid-file="$MUNGE/munged.pid" --log-file="$MUNGE/munged.log" \
            --seed-file="$MUNGE/munged.seed" --force >&2
    fi
    slurmctld -f "$CONF" >&2
    slurmd -f "$CONF" -N localhost >&2
    for _ in $(seq 1 300); do
        if up; then
            echo "$CONF"
            return
        fi
        sleep 0.1
    done
    echo "slurm.sh: the node did not become idle (state: $(node_state))" >&2
    tail -20 "$BASE/log/slurmctld.log" "$BASE/log/slurmd.log" >&2 2>/dev/null || true
    exit 1
}

case "${1:-start}" in
    start) start ;;
    stop) stop >&2 ;;
    conf) echo "$CONF" ;;
    *) echo "usage: $0 start|stop|conf" >&2; exit 2 ;;
esac
