#!/usr/bin/env bash
# Development Slurm cluster for qshpc, on one machine, as root.
#
#   slurm/devcluster.sh up [--nodes N]   start (N=1: one node on loopback;
#                                        N>1: N nodes in network namespaces)
#   slurm/devcluster.sh down             stop everything this script started
#   slurm/devcluster.sh status           sinfo + daemon liveness (exit 0 = up)
#   slurm/devcluster.sh env              print `export SLURM_CONF=...`
#
# Everything (config, state, logs, pids, MariaDB data) lives in
# ${QSHPC_SLURM_DIR:-/var/tmp/qshpc-slurm}. Nothing is written under /etc except
# the munge key when none exists. Clients must use SLURM_CONF from `env`
# (or source $QSHPC_SLURM_DIR/env.sh).
#
# Environment:
#   QSHPC_SLURM_DIR      state folder (default /var/tmp/qshpc-slurm)
#   NODES                node count when --nodes is not given (default 1)
#   QSHPC_SLURM_TIMEOUT  seconds to wait for each daemon (default 60)
#   QSHPC_SLURM_GPUS     GPUs to declare as gres on the single node
#                        (default: the number of /dev/nvidiaN devices)
#   QSHPC_SLURM_DB_PORT  private MariaDB port (default 3307)
set -euo pipefail

DIR=${QSHPC_SLURM_DIR:-/var/tmp/qshpc-slurm}
CONF=$DIR/slurm.conf
RUN=$DIR/run
LOG=$DIR/log
STATE=$DIR/state
MYDIR=$DIR/mysql
MUNGEDIR=$DIR/munge
DB_PORT=${QSHPC_SLURM_DB_PORT:-3307}
TIMEOUT=${QSHPC_SLURM_TIMEOUT:-60}
CLUSTER=qshpc
BRIDGE=br-mn
BRIDGE_IP=10.77.0.1
MUNGE_SOCKET=/run/munge/munge.socket.2
HOST=$(hostname)

export SLURM_CONF=$CONF

log() { printf '[devcluster] %s\n' "$*" >&2; }
die() { printf '[devcluster] ERROR: %s\n' "$*" >&2; exit 1; }

# die with the tail of a log file
die_log() {
    local msg=$1; shift
    printf '[devcluster] ERROR: %s\n' "$msg" >&2
    local f
    for f in "$@"; do
        if [[ -f $f ]]; then
            printf '[devcluster] ---- last lines of %s ----\n' "$f" >&2
            tail -n 25 "$f" >&2 || true
        fi
    done
    exit 1
}

usage() {
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
}

# ---------------------------------------------------------------- pids

alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

pid_of() {  # pid_of NAME -> pid from $RUN/NAME.pid (empty if none)
    local f=$RUN/$1.pid
    [[ -f $f ]] && head -n1 "$f" | tr -dc '0-9' || true
}

pid_alive() { alive "$(pid_of "$1")"; }

# stop_pids PID...: SIGTERM to all at once, wait up to 15 s, then SIGKILL
stop_pids() {
    local pid i left
    for pid in "$@"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 300; i++)); do
        left=()
        for pid in "$@"; do alive "$pid" && left+=("$pid"); done
        ((${#left[@]} == 0)) && return 0
        sleep 0.05
    done
    log "pid(s) ${left[*]} ignored SIGTERM for 15 s: SIGKILL"
    kill -KILL "${left[@]}" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        left=()
        for pid in "$@"; do alive "$pid" && left+=("$pid"); done
        ((${#left[@]} == 0)) && return 0
        sleep 0.1
    done
}

# stop_named NAME...: stop the processes recorded in $RUN/NAME.pid, drop the files
stop_named() {
    local name pid pids=() names=()
    for name in "$@"; do
        pid=$(pid_of "$name")
        if alive "$pid"; then
            pids+=("$pid")
            names+=("$name($pid)")
        fi
    done
    if ((${#pids[@]})); then
        log "stopping ${names[*]}"
        stop_pids "${pids[@]}"
    fi
    for name in "$@"; do rm -f "$RUN/$name.pid"; done
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.1 s until COMMAND succeeds
wait_for() {
    local secs=$1; shift 2  # $2 names the wait, for readers
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 0.1
    done
}

# ---------------------------------------------------------------- packages

ensure_packages() {
    local need=() pair bin pkg
    for pair in munged:munge mungekey:munge slurmctld:slurmctld slurmd:slurmd \
        slurmdbd:slurmdbd sinfo:slurm-client sacct:slurm-client \
        mariadbd:mariadb-server mariadb-install-db:mariadb-server \
        ip:iproute2 nsenter:util-linux unshare:util-linux; do
        bin=${pair%%:*} pkg=${pair#*:}
        if ! command -v "$bin" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$bin ]]; then
            [[ " ${need[*]-} " == *" $pkg "* ]] || need+=("$pkg")
        fi
    done
    ((${#need[@]} == 0)) && return 0
    command -v apt-get >/dev/null || die "missing packages (${need[*]}) and no apt-get"
    log "installing: ${need[*]}"
    # Keep the packages' own services (system mariadb/slurm on default ports)
    # from starting: we run private instances.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    local rc=0
    {
        # apt-get update only when needed: no package lists yet, or the install failed
        if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
            apt-get update -q
        fi
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"; then
            apt-get update -q && DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -q --no-install-recommends "${need[@]}"
        fi
    } >&2 || rc=$?
    ((made_policy)) && rm -f "$policy"
    ((rc == 0)) || die "apt-get install ${need[*]} failed (rc=$rc)"
}

# ---------------------------------------------------------------- config

mem_total_mb() { awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo; }

gpu_count() {
    if [[ -n ${QSHPC_SLURM_GPUS:-} ]]; then
        echo "$QSHPC_SLURM_GPUS"
        return
    fi
    local n=0 d
    for d in /dev/nvidia[0-9]*; do [[ -e $d ]] && n=$((n + 1)); done
    echo "$n"
}

node_names() {  # node names for NODES
    if ((NODES == 1)); then
        echo "$HOST"
    else
        local i
        for ((i = 1; i <= NODES; i++)); do echo "n$i"; done
    fi
}

node_ip() { echo "10.77.0.$((10 + ${1#n}))"; }

# Writes the wanted config to $1 (slurm.conf) and $2 (slurmdbd.conf), $3 (gres.conf)
render_config() {
    local out=$1 dbdout=$2 gresout=$3
    local ctld_addr acct_host nodes_line gres_types="" i mem
    mem=$(mem_total_mb)
    if ((NODES == 1)); then
        ctld_addr=127.0.0.1
        acct_host=127.0.0.1
    else
        ctld_addr=$BRIDGE_IP
        acct_host=$BRIDGE_IP
    fi
    {
        cat <<EOF
# Written by slurm/devcluster.sh from hostname, nproc and MemTotal; do not edit.
ClusterName=$CLUSTER
SlurmctldHost=$HOST($ctld_addr)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SlurmdParameters=config_overrides
ReturnToService=2
EnforcePartLimits=ALL
PlugStackConfig=$DIR/plugstack.conf
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd-%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# short timers so that cancels and time limits show quickly in tests
KillWait=5
MinJobAge=30
InactiveLimit=0
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=30
Waittime=0
OverTimeLimit=0
UnkillableStepTimeout=30
# accounting (sacct) through a private slurmdbd + MariaDB
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$acct_host
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
# FirstJobId: set at each slurmctld start past the ids already in accounting,
# since \`slurmctld -c\` would restart ids at 1 (stale sacct/submitit matches)
Include $DIR/jobid.conf
EOF
        if ((NODES == 1)); then
            local cpus gpus
            cpus=$(nproc)
            gpus=$(gpu_count)
            # RealMemory a bit below MemTotal (slurmd's own figure is below it too)
            mem=$((mem * 9 / 10))
            if ((gpus > 0)); then
                echo "GresTypes=gpu"
                gres_types=" Gres=gpu:$gpus"
            fi
            echo "NodeName=$HOST NodeAddr=127.0.0.1 NodeHostname=$HOST CPUs=$cpus RealMemory=$mem$gres_types State=UNKNOWN"
            nodes_line=$HOST
        else
            for ((i = 1; i <= NODES; i++)); do
                echo "NodeName=n$i NodeAddr=$(node_ip n$i) NodeHostname=n$i CPUs=2 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=4000 State=UNKNOWN"
            done
            nodes_line="n[1-$NODES]"
        fi
        cat <<EOF
PartitionName=debug Nodes=$nodes_line Default=YES State=UP OverSubscribe=FORCE:4 MaxTime=INFINITE DefaultTime=60
PartitionName=batch Nodes=$nodes_line Default=NO State=UP OverSubscribe=FORCE:4 MaxTime=INFINITE DefaultTime=60
EOF
    } >"$out"

    local gpus
    gpus=$( ((NODES == 1)) && gpu_count || echo 0)
    : >"$gresout"
    if ((gpus > 0)); then
        {
            echo "AutoDetect=off"
            echo "NodeName=$HOST Name=gpu File=/dev/nvidia[0-$((gpus - 1))]"
        } >"$gresout"
    fi

    cat >"$dbdout" <<EOF
# Written by slurm/devcluster.sh; do not edit. slurmdbd reads it from the
# folder of \$SLURM_CONF and refuses it unless it is mode 600.
AuthType=auth/munge
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(db_password)
StorageLoc=slurm_acct_db
EOF
}

db_password() {
    local f=$DIR/db.secret
    if [[ ! -s $f ]]; then
        (umask 077 && head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$f")
    fi
    cat "$f"
}

# Install config into $DIR. Returns 0 when nothing changed, 10 when it changed.
write_config() {
    local tmp changed=0
    tmp=$(mktemp -d "$DIR/.cfg.XXXXXX")
    render_config "$tmp/slurm.conf" "$tmp/slurmdbd.conf" "$tmp/gres.conf"
    local f
    for f in slurm.conf slurmdbd.conf gres.conf; do
        if ! cmp -s "$tmp/$f" "$DIR/$f"; then
            changed=1
            install -m 600 "$tmp/$f" "$DIR/$f"
        fi
    done
    chmod 644 "$DIR/slurm.conf" "$DIR/gres.conf"
    chmod 600 "$DIR/slurmdbd.conf"
    [[ -f $DIR/plugstack.conf ]] || : >"$DIR/plugstack.conf"
    [[ -f $DIR/jobid.conf ]] || echo "FirstJobId=1" >"$DIR/jobid.conf"
    rm -rf "$tmp"
    write_env
    ((changed)) && return 10
    return 0
}

write_env() {
    printf 'export SLURM_CONF=%s\n' "$CONF" >"$DIR/env.sh"
    chmod 644 "$DIR/env.sh"
}

# ---------------------------------------------------------------- munge

munge_works() { munge -n -s 1 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if munge_works; then
        return 0
    fi
    local key=/etc/munge/munge.key
    if [[ ! -s $key ]]; then
        log "creating munge key $key"
        install -d -m 700 -o munge -g munge /etc/munge
        mungekey --create --keyfile="$key"
        chown munge:munge "$key"
        chmod 600 "$key"
    fi
    install -d -m 755 -o munge -g munge /run/munge
    install -d -m 700 -o munge -g munge "$MUNGEDIR"
    log "starting munged"
    runuser -u munge -- munged --key-file="$key" --socket="$MUNGE_SOCKET" \
        --pid-file="$MUNGEDIR/munged.pid" --log-file="$MUNGEDIR/munged.log" \
        --seed-file="$MUNGEDIR/munged.seed" ||
        die_log "munged did not start" "$MUNGEDIR/munged.log"
    wait_for "$TIMEOUT" munge munge_works ||
        die_log "munged does not answer" "$MUNGEDIR/munged.log"
    cp "$MUNGEDIR/munged.pid" "$RUN/munged.pid"
}

# ---------------------------------------------------------------- mariadb

MYSOCK=$MYDIR/mysqld.sock
my() { mariadb --no-defaults -S "$MYSOCK" -uroot "$@"; }

start_mariadb() {
    if pid_alive mariadb && my -e 'SELECT 1' >/dev/null 2>&1; then
        return 0
    fi
    install -d -m 750 -o mysql -g mysql "$MYDIR"
    touch "$LOG/mariadb.log" && chown mysql:mysql "$LOG/mariadb.log"
    if [[ ! -d $MYDIR/data/mysql ]]; then
        log "initialising MariaDB in $MYDIR/data"
        rm -rf "$MYDIR/data"
        mariadb-install-db --no-defaults --user=mysql --datadir="$MYDIR/data" \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$LOG/mariadb-install.log" 2>&1 ||
            die_log "mariadb-install-db failed" "$LOG/mariadb-install.log"
    fi
    local pool=512M
    (($(mem_total_mb) < 8192)) && pool=128M
    log "starting MariaDB on 127.0.0.1:$DB_PORT"
    setsid mariadbd --no-defaults --user=mysql --datadir="$MYDIR/data" \
        --socket="$MYSOCK" --pid-file="$MYDIR/mariadbd.pid" \
        --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
        --log-error="$LOG/mariadb.log" --innodb-buffer-pool-size=$pool \
        --innodb-log-file-size=64M --innodb-lock-wait-timeout=900 \
        --max-allowed-packet=16M </dev/null >>"$LOG/mariadb.log" 2>&1 &
    echo $! >"$RUN/mariadb.pid"
    wait_for "$TIMEOUT" mariadb my -e 'SELECT 1' ||
        die_log "MariaDB did not answer within ${TIMEOUT}s" "$LOG/mariadb.log"
    local pw
    pw=$(db_password)
    my <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pw';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pw';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF
}

# ---------------------------------------------------------------- slurm daemons

dbd_works() { sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1; }

start_slurmdbd() {
    if pid_alive slurmdbd && dbd_works; then return 0; fi
    log "starting slurmdbd"
    slurmdbd </dev/null >>"$LOG/slurmdbd.out" 2>&1 ||
        die_log "slurmdbd did not start" "$LOG/slurmdbd.log" "$LOG/slurmdbd.out"
    wait_for "$TIMEOUT" slurmdbd dbd_works ||
        die_log "slurmdbd does not answer within ${TIMEOUT}s" "$LOG/slurmdbd.log"
}

ctld_works() { scontrol ping 2>/dev/null | grep -q 'is UP'; }

start_slurmctld() {
    if pid_alive slurmctld && ctld_works; then return 0; fi
    local next
    next=$(my -N -B -e "SELECT COALESCE(MAX(id_job), 0) + 1 FROM slurm_acct_db.${CLUSTER}_job_table" 2>/dev/null) || next=1
    [[ $next =~ ^[0-9]+$ ]] || next=1
    echo "FirstJobId=$next" >"$DIR/jobid.conf"
    log "starting slurmctld (first job id $next)"
    slurmctld -c -f "$CONF" </dev/null >>"$LOG/slurmctld.out" 2>&1 ||
        die_log "slurmctld did not start" "$LOG/slurmctld.log" "$LOG/slurmctld.out"
    wait_for "$TIMEOUT" slurmctld ctld_works ||
        die_log "slurmctld does not answer within ${TIMEOUT}s" "$LOG/slurmctld.log"
}

start_slurmd_single() {
    local name=slurmd-$HOST
    if pid_alive "$name"; then return 0; fi
    log "starting slurmd ($HOST)"
    slurmd -f "$CONF" </dev/null >>"$LOG/slurmd-$HOST.out" 2>&1 ||
        die_log "slurmd did not start" "$LOG/slurmd-$HOST.log" "$LOG/slurmd-$HOST.out"
}

# ---------------------------------------------------------------- namespaces

setup_network() {
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
    fi
    ip addr replace "$BRIDGE_IP/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    local n
    for n in $(node_names); do
        if [[ ! -e /run/netns/$n ]]; then
            ip netns add "$n"
        fi
        grep -qx "$n" "$DIR/netns" 2>/dev/null || echo "$n" >>"$DIR/netns"
        if ! ip link show "veth-$n" >/dev/null 2>&1; then
            ip link add "veth-$n" type veth peer name eth0 netns "$n"
        fi
        ip link set "veth-$n" master "$BRIDGE" up
        ip -n "$n" addr replace "$(node_ip "$n")/24" dev eth0
        ip -n "$n" link set lo up
        ip -n "$n" link set eth0 up
    done
    if [[ $(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0) == 1 ]]; then
        log "note: bridge-nf-call-iptables=1: a FORWARD DROP policy (e.g. Docker's) would block node-to-node traffic on $BRIDGE"
    fi
}

teardown_network() {
    # only what setup_network made: the namespaces listed in $DIR/netns
    local n
    if [[ -f $DIR/netns ]]; then
        while read -r n; do
            [[ -n $n ]] || continue
            ip link del "veth-$n" 2>/dev/null || true
            [[ -e /run/netns/$n ]] && ip netns del "$n" 2>/dev/null || true
        done <"$DIR/netns"
        rm -f "$DIR/netns"
    fi
    if ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link del "$BRIDGE" || true
    fi
}

start_slurmd_ns() {
    local n=$1 name=node-$1
    if pid_alive "$name"; then return 0; fi
    log "starting slurmd $n in netns $n ($(node_ip "$n"))"
    mkdir -p "$STATE/slurmd-$n"
    # nsenter execs unshare, so $! is unshare's host pid; slurmd is its child
    # (pid 1 of the node's pid namespace). --kill-child: if unshare dies, so does slurmd.
    setsid nsenter --net="/run/netns/$n" \
        unshare --uts --ipc --pid --fork --mount-proc --kill-child=SIGTERM \
        sh -c "hostname $n; exec slurmd -D -N $n -f '$CONF'" \
        </dev/null >>"$LOG/slurmd-$n.out" 2>&1 &
    echo $! >"$RUN/$name.pid"
}

# the slurmd of a namespace node: the child of the recorded unshare
node_slurmd_pid() {
    local pid
    pid=$(pid_of "node-$1")
    alive "$pid" && cat /proc/"$pid"/task/*/children 2>/dev/null || true
}

# ---------------------------------------------------------------- waits

nodes_ready() {
    local want=$1 count=0 name state
    while read -r name state; do
        case $state in
            idle | mixed | allocated | completing) count=$((count + 1)) ;;
            *) return 1 ;;
        esac
    done < <(sinfo -h -N -p debug -o '%N %T' 2>/dev/null | sort -u)
    ((count == want))
}

sacct_works() { sacct -n -X -S now-1minutes >/dev/null 2>&1 && sacctmgr -n -P show cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER"; }

# ---------------------------------------------------------------- commands

daemons_alive() {  # all daemons of the recorded mode alive?
    local n
    [[ -f $DIR/nodes ]] || return 1
    local nodes
    nodes=$(cat "$DIR/nodes")
    pid_alive mariadb && pid_alive slurmdbd && pid_alive slurmctld || return 1
    if ((nodes == 1)); then
        pid_alive "slurmd-$HOST" || return 1
    else
        for ((n = 1; n <= nodes; n++)); do pid_alive "node-n$n" || return 1; done
    fi
}

anything_running() {
    local f
    for f in "$RUN"/*.pid; do
        [[ -e $f ]] || continue
        [[ ${f##*/} == munged.pid ]] && continue
        alive "$(head -n1 "$f" | tr -dc 0-9)" && return 0
    done
    return 1
}

cmd_up() {
    [[ $EUID -eq 0 ]] || die "run as root"
    if ! [[ $NODES =~ ^[0-9]+$ ]] || ((NODES < 1 || NODES > 200)); then
        die "--nodes must be 1..200"
    fi
    ensure_packages
    mkdir -p "$DIR" "$RUN" "$LOG" "$STATE/ctld"
    # The daemons keep the directory they start in as their cwd. Started from a
    # checkout that is later deleted (a CI clone made again), slurmd launched
    # requeued batch jobs from a deleted cwd, and their MPI start-up failed
    # ("mpi/pmi2: invalid client request"). Start them from the state dir.
    cd "$DIR"
    chmod 755 "$DIR"

    local old_nodes=""
    [[ -f $DIR/nodes ]] && old_nodes=$(cat "$DIR/nodes")
    # `up` without a node count keeps a running cluster of any size.
    if [[ -z ${NODES_GIVEN:-} && -n $old_nodes ]] && anything_running; then NODES=$old_nodes; fi
    if [[ -n $old_nodes && $old_nodes != "$NODES" ]] && anything_running; then
        log "a ${old_nodes}-node cluster is running: taking it down first"
        cmd_down
        mkdir -p "$RUN"
    fi

    local rc=0
    write_config || rc=$?
    if ((rc == 10)) && anything_running; then
        log "configuration changed: restarting the cluster"
        cmd_down
        mkdir -p "$RUN"
    fi
    echo "$NODES" >"$DIR/nodes"
    # leftovers of an earlier multi-node run (e.g. after a crash)
    if ((NODES == 1)) && [[ -f $DIR/netns ]] && ! anything_running; then teardown_network; fi

    if daemons_alive && munge_works && ctld_works && nodes_ready "$NODES" && sacct_works; then
        log "already up ($NODES node(s)); SLURM_CONF=$CONF"
        return 0
    fi

    local t0=$SECONDS
    # the bridge first: slurmctld and slurmdbd are reached at its address
    if ((NODES > 1)); then setup_network; fi
    start_munge
    start_mariadb
    start_slurmdbd
    start_slurmctld
    local n
    if ((NODES == 1)); then
        mkdir -p "$STATE/slurmd-$HOST"
        start_slurmd_single
    else
        for n in $(node_names); do start_slurmd_ns "$n"; done
    fi

    if ! wait_for "$TIMEOUT" nodes nodes_ready "$NODES"; then
        sinfo -N >&2 || true
        local logs=("$LOG/slurmctld.log")
        for n in $(node_names); do logs+=("$LOG/slurmd-$n.log" "$LOG/slurmd-$n.out"); done
        die_log "nodes not idle within ${TIMEOUT}s" "${logs[@]}"
    fi
    wait_for "$TIMEOUT" sacct sacct_works ||
        die_log "sacct does not answer within ${TIMEOUT}s" "$LOG/slurmdbd.log" "$LOG/slurmctld.log"
    log "up: $NODES node(s) in $((SECONDS - t0)) s; export SLURM_CONF=$CONF"
    sinfo >&2
}

cmd_down() {
    [[ $EUID -eq 0 ]] || die "run as root"
    [[ -d $DIR ]] || { log "nothing to stop ($DIR absent)"; return 0; }
    # cancel jobs first so that no job step outlives its slurmd
    if pid_alive slurmctld && ctld_works; then
        if [[ -n $(squeue -h -o %i 2>/dev/null) ]]; then
            log "cancelling running jobs"
            scancel --full --user=root 2>/dev/null || true
            squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
            # shellcheck disable=SC2016
            wait_for 20 jobs-gone bash -c '[[ -z $(squeue -h -o %i 2>/dev/null) ]]' ||
                log "some jobs are still listed; stopping anyway"
        fi
    fi
    # slurmd(s) and slurmctld together; a namespace node's slurmd is pid 1 of
    # its pid namespace, so its job steps go with it, then its unshare exits.
    local f n names=() pids=() kids=()
    for f in "$RUN"/node-*.pid "$RUN"/slurmd-*.pid; do
        [[ -e $f ]] || continue
        n=${f##*/}
        names+=("${n%.pid}")
        if [[ $n == node-* ]]; then
            n=${n#node-}
            read -r -a kids <<<"$(node_slurmd_pid "${n%.pid}" | tr '\n' ' ')"
            pids+=("${kids[@]}")
        fi
    done
    if ((${#pids[@]})); then
        log "stopping namespace slurmd(s): ${pids[*]}"
        stop_pids "${pids[@]}"
    fi
    stop_named slurmctld "${names[@]}"
    stop_named slurmdbd
    local last=(mariadb)
    [[ -f $RUN/munged.pid ]] && last+=(munged)
    stop_named "${last[@]}"
    rm -f "$MUNGEDIR/munged.pid"
    teardown_network
    rm -f "$RUN"/*.pid
    log "down (logs kept in $LOG)"
}

cmd_status() {
    local up=0 nodes name n
    if [[ -f $DIR/nodes ]]; then nodes=$(cat "$DIR/nodes"); else nodes=0; fi
    echo "SLURM_CONF=$CONF"
    # sinfo takes ~10 s to give up on a controller that is not there: ask only when it runs
    if [[ -f $CONF ]] && pid_alive slurmctld && sinfo 2>/dev/null; then :; else
        echo "sinfo: no answer (slurmctld not running)"
        up=1
    fi
    printf '%-14s %s\n' munged "$(munge_works && echo alive || echo DEAD)"
    munge_works || up=1
    local names=(mariadb slurmdbd slurmctld)
    if ((nodes == 1)); then
        names+=("slurmd-$HOST")
    else
        for ((n = 1; n <= nodes; n++)); do names+=("node-n$n"); done
    fi
    ((nodes > 0)) || up=1
    for name in "${names[@]}"; do
        if pid_alive "$name"; then
            printf '%-14s alive (pid %s)\n' "$name" "$(pid_of "$name")"
        else
            printf '%-14s DEAD\n' "$name"
            up=1
        fi
    done
    if ((up == 0)); then echo "cluster: up ($nodes node(s))"; else echo "cluster: DOWN"; fi
    return $up
}

cmd_env() {
    if [[ -d $DIR ]] && [[ -w $DIR ]]; then write_env; fi
    printf 'export SLURM_CONF=%s\n' "$CONF"
}

main() {
    local cmd=${1:-}
    [[ -n $cmd ]] && shift
    NODES_GIVEN=${NODES:+yes}
    NODES=${NODES:-1}
    while (($#)); do
        case $1 in
            --nodes) NODES=${2:?--nodes needs a number}; NODES_GIVEN=yes; shift 2 ;;
            --nodes=*) NODES=${1#--nodes=}; NODES_GIVEN=yes; shift ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown argument: $1" ;;
        esac
    done
    case $cmd in
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        env) cmd_env ;;
        -h | --help | help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
