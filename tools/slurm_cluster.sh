#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for `make slurm-test` (tools/slurm_test.py) and for trying
# `make reproduce-<preset> LAUNCHER=slurm` without a real cluster. Debian packages; root only.
#
#   tools/slurm_cluster.sh install        apt-get the daemons (munge, slurmctld, slurmd, slurmdbd, MariaDB) if missing
#   tools/slurm_cluster.sh up DIR         start munged, mariadbd, slurmdbd, slurmctld, slurmd; everything lives in DIR
#                                         (configs, spool, DB, logs, pid files); prints `export SLURM_CONF=...`
#   tools/slurm_cluster.sh down DIR       cancel the cluster's jobs, then stop each daemon by the PID it recorded
#
# Accounting (slurmdbd + MariaDB) is there because submitit reads job states with `sacct`: without it a job that
# dies without a result leaves the driver waiting forever. AuthInfo=cred_expire=10 shortens SLURM's requeue delay
# (a requeued job may start again cred_expire seconds later; the default is 120 s). The node advertises
# CLUSTER_CPUS CPUs (default 4, SlurmdParameters=config_overrides) so a few 1-CPU jobs run at once on 2 cores.
set -euo pipefail

PACKAGES=(munge slurmctld slurmd slurmdbd slurm-client mariadb-server)

die() { echo; echo "slurm_cluster: $*" >&2; exit 1; }

install() {
    local missing=()
    for b in munged slurmctld slurmd slurmdbd sbatch sacct mariadbd; do
        command -v "$b" >/dev/null || missing+=("$b")
    done
    [ ${#missing[@]} -eq 0 ] && { echo "slurm_cluster: packages already installed"; return 0; }
    [ "$(id -u)" = 0 ] || die "missing ${missing[*]}; run as root to apt-get install ${PACKAGES[*]}"
    local t0=$SECONDS
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
    echo "slurm_cluster: installed ${PACKAGES[*]} in $((SECONDS - t0)) s"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds
    local limit=$1 what=$2; shift 2
    for _ in $(seq 1 $((limit * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
    die "$what did not come up within ${limit} s (logs in $DIR/log)"
}

start() {  # start NAME COMMAND...: run a daemon in the foreground of a background job, record its PID
    local name=$1; shift
    "$@" >>"$DIR/log/$name.out" 2>&1 &
    echo $! >"$DIR/pid/$name"
}

up() {
    [ "$(id -u)" = 0 ] || die "the local cluster runs its daemons as root: run as root"
    install
    mkdir -p "$DIR"/{etc,log,pid,spool/ctld,spool/d,db,run}
    DIR=$(cd "$DIR" && pwd)
    local host cpus mem
    host=$(hostname -s)
    cpus=${CLUSTER_CPUS:-4}
    mem=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 3 / 4 ))
    local port_db=${CLUSTER_DB_PORT:-36306} port_dbd=${CLUSTER_DBD_PORT:-36819}
    local port_ctld=${CLUSTER_CTLD_PORT:-36817} port_d=${CLUSTER_SLURMD_PORT:-36818}

    # munge: the package's key, the standard socket (slurm's auth/munge looks there)
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none;
                                         chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
        mkdir -p /run/munge && chown munge:munge /run/munge
        start munged setpriv --reuid=munge --regid=munge --clear-groups /usr/sbin/munged -F
        wait_for 20 munged sh -c 'munge -n | unmunge'
    fi

    # MariaDB: a private instance on 127.0.0.1:$port_db with its data in DIR/db
    chown mysql:mysql "$DIR/db" "$DIR/run"
    [ -d "$DIR/db/mysql" ] || mariadb-install-db --user=mysql --datadir="$DIR/db" --skip-test-db \
        --auth-root-authentication-method=socket >"$DIR/log/mariadb-install.out" 2>&1
    start mariadbd setpriv --reuid=mysql --regid=mysql --clear-groups /usr/sbin/mariadbd --no-defaults \
        --datadir="$DIR/db" --socket="$DIR/run/mysqld.sock" --port="$port_db" --bind-address=127.0.0.1 \
        --pid-file="$DIR/run/mariadbd.pid" --skip-log-bin
    wait_for 60 mariadbd mariadb --no-defaults --socket="$DIR/run/mysqld.sock" -uroot -e 'select 1'
    mariadb --no-defaults --socket="$DIR/run/mysqld.sock" -uroot -e \
        "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"

    cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=$port_dbd
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$port_db
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$DIR/etc/slurmdbd.conf"
    cat >"$DIR/etc/slurm.conf" <<EOF
ClusterName=lorarepro
SlurmctldHost=$host
SlurmctldPort=$port_ctld
SlurmdPort=$port_d
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=sched_interval=2
JobRequeue=1
ReturnToService=2
KillWait=10
MpiDefault=none
SlurmdParameters=config_overrides
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$port_dbd
JobAcctGatherType=jobacct_gather/none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$DIR/etc/slurm.conf"
    start slurmdbd /usr/sbin/slurmdbd -D   # reads slurmdbd.conf beside $SLURM_CONF
    wait_for 60 slurmdbd sacctmgr -n list cluster
    sacctmgr -i add cluster lorarepro >/dev/null 2>&1 || true
    start slurmctld /usr/sbin/slurmctld -D -i -f "$SLURM_CONF"
    wait_for 60 slurmctld scontrol ping
    start slurmd /usr/sbin/slurmd -D -f "$SLURM_CONF"
    wait_for 60 "slurmd (node idle)" sh -c "sinfo -h -o %t | grep -q idle"
    echo "slurm_cluster: up ($(sinfo -h -o '%P %a %D %t %N'), $cpus CPUs advertised); logs in $DIR/log"
    echo "export SLURM_CONF=$SLURM_CONF"
}

down() {
    [ -d "$DIR/pid" ] || { echo "slurm_cluster: nothing recorded in $DIR/pid"; return 0; }
    export SLURM_CONF="$DIR/etc/slurm.conf"
    if [ -s "$DIR/pid/slurmctld" ] && kill -0 "$(cat "$DIR/pid/slurmctld")" 2>/dev/null; then
        scancel --quiet --user="$(id -un)" 2>/dev/null || true   # the cluster is ours alone
        for _ in $(seq 1 60); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
    fi
    local name pid
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        [ -s "$DIR/pid/$name" ] || continue
        pid=$(cat "$DIR/pid/$name")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
            echo "slurm_cluster: stopped $name (pid $pid)"
        fi
        rm -f "$DIR/pid/$name"
    done
}

cmd=${1:-}; DIR=${2:-}
case "$cmd" in
    install) install ;;
    up) [ -n "$DIR" ] || die "usage: $0 up DIR"; up ;;
    down) [ -n "$DIR" ] || die "usage: $0 down DIR"; down ;;
    *) die "usage: $0 install | up DIR | down DIR" ;;
esac
