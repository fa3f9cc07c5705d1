#!/usr/bin/env bash
# Project-local service instances on fixed loopback ports, no Docker needed:
#   main       PostgreSQL, system of record        127.0.0.1:55432  database personalify
#   analytics  PostgreSQL, the postgres_fdw node   127.0.0.1:55433  database analytics
#   analytics-2  PostgreSQL, a second such node    127.0.0.1:55434  database analytics
#   analytics-replica  PostgreSQL, the nodes' read replica  127.0.0.1:55435  database analytics
#   redis      Redis, cache and coordination       127.0.0.1:56379
#   mongo      mongod if on PATH, else SecantusDB  127.0.0.1:57017
# Data lives under $DATA_DIR (default ./.data, git-ignored): one folder per service, logs
# in log/, pid files and sockets in run/. `source scripts/env.sh` for the matching URLs.
#
# Usage: scripts/services.sh up|down [NAME...]     start / stop all, or the named ones
#        scripts/services.sh start|stop|restart NAME...
#        scripts/services.sh status
# up is idempotent; down only stops processes this script started.
set -euo pipefail
shopt -s extglob # for the @(a|b) pattern in mongo_pid

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SERVICES=(main analytics analytics-2 analytics-replica redis mongo)

# PostgreSQL will not run as root, so as root the clusters run as `postgres`, which must
# be able to reach the data folder. A clone under a private home (CI may clone anywhere)
# is not reachable: then keep the data under /var/tmp and leave a .data symlink to it.
if ((EUID == 0)) && [[ -z ${PERSONALIFY_DATA_DIR:-} ]] && id postgres >/dev/null 2>&1 &&
  ! runuser -u postgres -- test -x "$ROOT" 2>/dev/null; then
  alt=/var/tmp/personalify-$(printf '%s' "$ROOT" | sha256sum | cut -c 1-12)
  mkdir -p "$alt" && chmod 755 "$alt"
  [[ -e $DATA_DIR || -L $DATA_DIR ]] || ln -s "$alt" "$DATA_DIR"
  DATA_DIR=$alt
fi
LOG_DIR=$DATA_DIR/log
RUN_DIR=$DATA_DIR/run
WAIT_SECS=${PERSONALIFY_WAIT_SECS:-30}
PG_USER=personalify
PG_PASSWORD=personalify

usage() {
  sed -n '11,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------------------------------
# Generic helpers

port_of() {
  case $1 in
    main) echo "$PG_MAIN_PORT" ;;
    analytics) echo "$PG_ANALYTICS_PORT" ;;
    analytics-2) echo "$PG_ANALYTICS_2_PORT" ;;
    analytics-replica) echo "$PG_ANALYTICS_REPLICA_PORT" ;;
    redis) echo "$REDIS_PORT" ;;
    mongo) echo "$MONGO_PORT" ;;
  esac
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  # shellcheck disable=SC2016 # $1 expands in the inner shell
  timeout 1 bash -c ': >"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# Who listens on PORT, as `"name",pid=N,fd=M` (empty when ss is missing or can't tell).
port_owner() {
  command -v ss >/dev/null || return 0
  ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))$/\1/p' | head -n 1
}

# Refuse to start NAME when its port is taken by a process that is not ours.
ensure_port_free() {
  local name=$1 port owner
  port=$(port_of "$name")
  if port_open "$port"; then
    owner=$(port_owner "$port")
    die "$name: port $port is already in use by something that is not Personalify's" \
      "$name${owner:+ ($owner)}. Stop it, or move ours with PERSONALIFY_*_PORT (scripts/lib.sh)."
  fi
}

# The process's command line with spaces between arguments ("" when it is gone).
cmdline_of() {
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
}

# True when PID is a live process (a zombie, an exited child not yet reaped, is not).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# pid_matching PIDFILE PATTERN: print the pid recorded in PIDFILE when that process is
# alive and its command line matches the glob PATTERN; fail otherwise.
pid_matching() {
  local pid
  [[ -r $1 ]] || return 1
  read -r pid <"$1" || true
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  # shellcheck disable=SC2053 # $2 is a glob on purpose
  [[ $(cmdline_of "$pid") == $2 ]] || return 1
  echo "$pid"
}

show_log_tail() {
  [[ -s $1 ]] || return 0
  printf '    last lines of %s:\n' "$1" >&2
  tail -n 15 "$1" | sed 's/^/    | /' >&2
}

# wait_until NAME LOGFILE CMD...: poll CMD until it succeeds, at most $WAIT_SECS seconds.
# CMD returning 3 means the process is gone: give up at once.
wait_until() {
  local name=$1 logfile=$2 deadline rc
  shift 2
  deadline=$((SECONDS + WAIT_SECS))
  while :; do
    rc=0
    "$@" >/dev/null 2>&1 || rc=$?
    ((rc != 0)) || return 0
    if ((rc == 3)); then
      show_log_tail "$logfile"
      die "$name exited during start-up"
    fi
    if ((SECONDS >= deadline)); then
      show_log_tail "$logfile"
      die "$name did not answer on port $(port_of "$name") within ${WAIT_SECS}s"
    fi
    sleep 0.2
  done
}

# stop_pid NAME PID: SIGTERM, wait for the process to exit, SIGKILL as a last resort.
stop_pid() {
  local name=$1 pid=$2 deadline
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + WAIT_SECS))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      warn "$name (pid $pid) ignored SIGTERM for ${WAIT_SECS}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------------------------------
# PostgreSQL: four clusters (main, analytics, analytics-2, analytics-replica) from the same Debian binaries

PG_BIN=${PERSONALIFY_PG_BIN:-}

require_pg() {
  local dir
  if [[ -z $PG_BIN ]]; then
    # The newest installed major version, e.g. /usr/lib/postgresql/15/bin.
    dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    [[ -x $dir/initdb ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql; run scripts/setup.sh"
    PG_BIN=$dir
  fi
  if ((EUID == 0)); then
    # PostgreSQL refuses to run as root: the clusters belong to the postgres user, which
    # must be able to reach them.
    id postgres >/dev/null 2>&1 || die "user postgres is missing (it comes with Debian's postgresql package)"
    runuser -u postgres -- test -x "$DATA_DIR" ||
      die "the postgres user cannot reach $DATA_DIR (PostgreSQL will not run as root, so" \
        "it runs as postgres): make the parent folders traversable (chmod o+x) or set" \
        "PERSONALIFY_DATA_DIR to a path it can reach, e.g. /var/tmp/personalify-data"
  fi
}

# Run a PostgreSQL program as the cluster owner (postgres when we are root).
as_pg() {
  local prog=$1
  shift
  if ((EUID == 0)); then
    (cd / && runuser -u postgres -- "$PG_BIN/$prog" "$@")
  else
    "$PG_BIN/$prog" "$@"
  fi
}

# Hand a path we created to the cluster owner.
give_to_pg() {
  if ((EUID == 0)); then chown postgres:postgres "$@"; fi
}

pg_db() { if [[ $1 == main ]]; then echo personalify; else echo analytics; fi; }
pg_data() { echo "$DATA_DIR/pg/$1"; }

# Unix socket folder: run/NAME, or a short folder under /tmp when that path would push
# the socket path past the kernel's 107-byte limit.
pg_sock_dir() {
  local dir=$RUN_DIR/$1 hash
  if ((${#dir} + 20 > 107)); then
    hash=$(printf '%s' "$DATA_DIR" | sha256sum | cut -c 1-12)
    dir=/tmp/personalify-$hash/$1
  fi
  echo "$dir"
}

# pid of the cluster's postmaster, from its own postmaster.pid.
pg_pid() {
  local data
  data=$(pg_data "$1")
  pid_matching "$data/postmaster.pid" "*postgres*-D*$data*"
}

pg_init() {
  local name=$1 data logfile pwfile locale=C.UTF-8
  data=$(pg_data "$name")
  logfile=$LOG_DIR/$name.log
  [[ -f $data/PG_VERSION ]] && return 0
  if [[ -d $data && -n $(ls -A "$data") ]]; then
    die "$data exists but holds no PostgreSQL cluster; move it away and run again"
  fi
  locale -a 2>/dev/null | grep -qix 'c\.utf-\?8' || locale=C
  mkdir -p "$data"
  chmod 700 "$data"
  give_to_pg "$data"
  pwfile=$(mktemp "$RUN_DIR/pwfile.XXXXXX")
  printf '%s\n' "$PG_PASSWORD" >"$pwfile"
  give_to_pg "$pwfile"
  # --no-sync: a crash during these few seconds only means re-running `up` on a fresh dir.
  if ! as_pg initdb -D "$data" -U "$PG_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale="$locale" \
    --no-instructions --no-sync >>"$logfile" 2>&1; then
    rm -f "$pwfile"
    rm -rf "$data"
    show_log_tail "$logfile"
    die "$name: initdb failed"
  fi
  rm -f "$pwfile"
  log "    initialised cluster in $data"
}

pg_start() {
  local name=$1 port data logfile sock db pid
  port=$(port_of "$name")
  data=$(pg_data "$name")
  logfile=$LOG_DIR/$name.log
  sock=$(pg_sock_dir "$name")
  db=$(pg_db "$name")
  require_pg

  if pid=$(pg_pid "$name"); then
    log "    already running (pid $pid)"
  else
    ensure_port_free "$name"
    touch "$logfile"
    mkdir -p "$sock"
    chmod 700 "$sock"
    give_to_pg "$logfile" "$sock"
    pg_init "$name"
    # Settings go on the command line so the ports and paths can change without re-init.
    # The analytics nodes publish their plays to the read replica (logical replication).
    local extra=""
    if [[ $name == analytics || $name == analytics-2 ]]; then
      extra="-c wal_level=logical -c max_replication_slots=32 -c max_wal_senders=32"
    elif [[ $name == analytics-replica ]]; then
      # A subscription per node (and per test database): their apply and first-copy workers.
      extra="-c max_logical_replication_workers=24 -c max_worker_processes=32 -c max_sync_workers_per_subscription=4 -c max_replication_slots=32"
    fi
    # PERSONALIFY_PG_PRELOAD (scripts/test-at.sh: libfaketime) goes to the server only.
    if ! LD_PRELOAD=${PERSONALIFY_PG_PRELOAD:-} as_pg pg_ctl -D "$data" -l "$logfile" -w -t "$WAIT_SECS" -o "\
-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$sock' \
-c shared_buffers=64MB -c max_connections=100 $extra" start >/dev/null 9>&-; then
      show_log_tail "$logfile"
      die "$name: PostgreSQL did not start"
    fi
    log "    started (pid $(pg_pid "$name" || echo '?'))"
  fi
  wait_until "$name" "$logfile" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 1

  # The app's database; the bootstrap user may connect through the socket without password.
  if [[ $(as_pg psql -X -h "$sock" -p "$port" -U "$PG_USER" -d postgres -tAc \
    "select 1 from pg_database where datname = '$db'") != 1 ]]; then
    as_pg createdb -h "$sock" -p "$port" -U "$PG_USER" "$db"
    log "    created database $db"
  fi
}

pg_stop() {
  local name=$1 pid
  if ! pid=$(pg_pid "$name"); then
    log "    not running"
    return 0
  fi
  require_pg
  as_pg pg_ctl -D "$(pg_data "$name")" -m fast -w -t "$WAIT_SECS" stop >/dev/null
  log "    stopped (pid $pid)"
}

# ---------------------------------------------------------------------------------------
# Redis

redis_pid() {
  # redis-server rewrites its title to "redis-server 127.0.0.1:PORT".
  pid_matching "$RUN_DIR/redis.pid" "redis-server*:$REDIS_PORT*"
}

redis_ready() {
  redis_pid >/dev/null || return 3
  [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

redis_start() {
  local logfile=$LOG_DIR/redis.log pid
  command -v redis-server >/dev/null || die "redis-server not found; run scripts/setup.sh"
  if pid=$(redis_pid); then
    log "    already running (pid $pid)"
  else
    ensure_port_free redis
    mkdir -p "$DATA_DIR/redis"
    rm -f "$RUN_DIR/redis.pid"
    # A cache: no snapshots, no append-only file.
    # 9>&-: the daemons must not inherit (and so hold) the services.lock descriptor.
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
      --dir "$DATA_DIR/redis" --pidfile "$RUN_DIR/redis.pid" --logfile "$logfile" \
      --save "" --appendonly no 9>&-
    wait_until redis "$logfile" redis_pid
    log "    started (pid $(redis_pid))"
  fi
  wait_until redis "$logfile" redis_ready
}

redis_stop() {
  local pid
  if ! pid=$(redis_pid); then
    log "    not running"
    return 0
  fi
  stop_pid redis "$pid"
  rm -f "$RUN_DIR/redis.pid"
  log "    stopped (pid $pid)"
}

# ---------------------------------------------------------------------------------------
# MongoDB wire protocol: mongod when installed, else SecantusDB from the shared venv

mongo_pid() {
  pid_matching "$RUN_DIR/mongo.pid" "*@(mongod|secantusd-py)*--port $MONGO_PORT*"
}

# A real `ping` command over OP_MSG, standard library only (works with any python3).
# shellcheck disable=SC2016 # Python source, not shell
MONGO_PING_PY='
import socket, struct, sys
port = int(sys.argv[1])
def cstr(s): return s.encode() + b"\0"
body = b"\x10" + cstr("ping") + struct.pack("<i", 1)
body += b"\x02" + cstr("$db") + struct.pack("<i", 6) + cstr("admin")
doc = struct.pack("<i", len(body) + 5) + body + b"\0"
msg = struct.pack("<I", 0) + b"\0" + doc          # flagBits, section kind 0, body
with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
    s.settimeout(2)
    s.sendall(struct.pack("<iiii", 16 + len(msg), 1, 0, 2013) + msg)
    data = b""
    while len(data) < 4 or len(data) < struct.unpack("<i", data[:4])[0]:
        chunk = s.recv(65536)
        if not chunk: sys.exit("connection closed")
        data += chunk
doc = data[21:]                                    # skip header, flagBits, kind
i, end = 4, struct.unpack("<i", doc[:4])[0] - 1
fixed = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8}
while i < end:
    kind, j = doc[i], doc.index(b"\0", i + 1)
    name, i = doc[i + 1:j], j + 1
    if name == b"ok":
        fmt = {0x01: "<d", 0x10: "<i", 0x12: "<q"}.get(kind)
        sys.exit(0 if fmt and struct.unpack_from(fmt, doc, i)[0] == 1 else "ok != 1")
    if kind in fixed: i += fixed[kind]
    elif kind in (0x02, 0x0D, 0x0E): i += 4 + struct.unpack_from("<i", doc, i)[0]
    elif kind in (0x03, 0x04): i += struct.unpack_from("<i", doc, i)[0]
    elif kind == 0x05: i += 5 + struct.unpack_from("<i", doc, i)[0]
    else: sys.exit("unexpected BSON type %d" % kind)
sys.exit("no ok field")
'

mongo_ready() {
  local py=python3 pid=
  read -r pid <"$RUN_DIR/mongo.pid" 2>/dev/null || true
  [[ -n $pid ]] && alive "$pid" || return 3
  # Just launched, the child may not have exec'd the server yet: wait for it.
  mongo_pid >/dev/null || return 1
  [[ -x $VENV_DIR/bin/python ]] && py=$VENV_DIR/bin/python
  "$py" -c "$MONGO_PING_PY" "$MONGO_PORT"
}

mongo_start() {
  local logfile=$LOG_DIR/mongo.log pidfile=$RUN_DIR/mongo.pid dbpath=$DATA_DIR/mongo pid conf
  if pid=$(mongo_pid); then
    log "    already running (pid $pid)"
  else
    ensure_port_free mongo
    mkdir -p "$dbpath"
    rm -f "$pidfile"
    if command -v mongod >/dev/null; then
      mongod --bind_ip 127.0.0.1 --port "$MONGO_PORT" --dbpath "$dbpath" --fork \
        --logpath "$logfile" --logappend --pidfilepath "$pidfile" >/dev/null 9>&- ||
        {
          show_log_tail "$logfile"
          die "mongod did not start"
        }
    else
      [[ -x $VENV_DIR/bin/secantusd-py ]] ||
        die "neither mongod nor $VENV_DIR/bin/secantusd-py found; run scripts/setup.sh"
      # An explicit (empty) config stops secantusd-py picking up ./secantusd.toml or
      # ~/.secantus/secantusd.toml from whoever runs this.
      conf=$RUN_DIR/secantusd.toml
      printf '# Empty on purpose: settings are flags in scripts/services.sh.\n' >"$conf"
      # setsid: its own session, so the terminal's Ctrl-C or a CI step's end spares it.
      setsid nohup "$VENV_DIR/bin/secantusd-py" --config "$conf" --host 127.0.0.1 \
        --port "$MONGO_PORT" --storage-path "$dbpath" </dev/null >>"$logfile" 2>&1 9>&- &
      echo "$!" >"$pidfile"
    fi
    wait_until mongo "$logfile" mongo_ready
    log "    started (pid $(mongo_pid))"
  fi
  wait_until mongo "$logfile" mongo_ready
}

mongo_stop() {
  local pid
  if ! pid=$(mongo_pid); then
    log "    not running"
    return 0
  fi
  # SecantusDB closes its storage cleanly on SIGTERM; it takes a few seconds.
  stop_pid mongo "$pid"
  rm -f "$RUN_DIR/mongo.pid"
  log "    stopped (pid $pid)"
}

# ---------------------------------------------------------------------------------------
# Commands

describe() {
  case $1 in
    main) echo "PostgreSQL main, port $PG_MAIN_PORT, database personalify" ;;
    analytics) echo "PostgreSQL analytics, port $PG_ANALYTICS_PORT, database analytics" ;;
    analytics-2) echo "PostgreSQL analytics-2, port $PG_ANALYTICS_2_PORT, database analytics" ;;
    analytics-replica) echo "PostgreSQL analytics-replica, port $PG_ANALYTICS_REPLICA_PORT, database analytics" ;;
    redis) echo "Redis, port $REDIS_PORT" ;;
    mongo)
      if command -v mongod >/dev/null; then
        echo "MongoDB (mongod), port $MONGO_PORT"
      else
        echo "MongoDB protocol (SecantusDB), port $MONGO_PORT"
      fi
      ;;
  esac
}

service_pid() {
  case $1 in
    main | analytics | analytics-2 | analytics-replica) pg_pid "$1" ;;
    redis) redis_pid ;;
    mongo) mongo_pid ;;
  esac
}

start_one() {
  case $1 in
    main | analytics | analytics-2 | analytics-replica) pg_start "$1" ;;
    redis) redis_start ;;
    mongo) mongo_start ;;
  esac
}

stop_one() {
  case $1 in
    main | analytics | analytics-2 | analytics-replica) pg_stop "$1" ;;
    redis) redis_stop ;;
    mongo) mongo_stop ;;
  esac
}

cmd_up() {
  local name start
  start=$(_now_us)
  for name in "$@"; do step "$name ($(describe "$name"))" start_one "$name"; done
  log "all up in $(elapsed_since "$start"): source scripts/env.sh for the URLs"
}

cmd_down() {
  local i
  # Reverse order: the stores the app leans on most go last.
  for ((i = $#; i >= 1; i--)); do step "stop ${!i}" stop_one "${!i}"; done
}

cmd_status() {
  local name port pid owner
  for name in "${SERVICES[@]}"; do
    port=$(port_of "$name")
    if pid=$(service_pid "$name"); then
      printf '%-12s %-6s %-5s pid %s\n' "$name" "$port" up "$pid"
    elif port_open "$port"; then
      owner=$(port_owner "$port")
      printf '%-12s %-6s %-5s -   (port taken by another process%s)\n' \
        "$name" "$port" down "${owner:+: $owner}"
    else
      printf '%-12s %-6s %-5s -\n' "$name" "$port" down
    fi
  done
}

# Check NAME... are known service names.
check_names() {
  local name known
  for name in "$@"; do
    for known in "${SERVICES[@]}"; do [[ $name == "$known" ]] && continue 2; done
    die "unknown service '$name' (known: ${SERVICES[*]})"
  done
}

main() {
  local cmd=${1:-}
  [[ -n $cmd ]] || usage
  shift
  check_names "$@"
  case $cmd in
    up | down | restart) (($#)) || set -- "${SERVICES[@]}" ;;
    start | stop) (($#)) || die "$cmd needs a service name (${SERVICES[*]})" ;;
    status) ;;
    *) usage ;;
  esac
  [[ $cmd == status ]] && {
    cmd_status
    return
  }

  mkdir -p "$LOG_DIR" "$RUN_DIR"
  # One up/down at a time per data folder (a test runner and a person may race).
  exec 9>"$RUN_DIR/services.lock"
  flock -w 120 9 || die "another scripts/services.sh holds $RUN_DIR/services.lock"

  case $cmd in
    up | start) cmd_up "$@" ;;
    down | stop) cmd_down "$@" ;;
    restart)
      cmd_down "$@"
      cmd_up "$@"
      ;;
  esac
}

main "$@"
