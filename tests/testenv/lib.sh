# Shared by up.sh and down.sh: where the state lives and how our processes are found and stopped.
# shellcheck shell=bash
testenv_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
testenv_root=$(cd "$testenv_here/../.." && pwd)
state=${TESTENV_DIR:-$testenv_root/.testenv}
components=(kwok kube-scheduler kube-controller-manager kube-apiserver etcd)
timeout=${TESTENV_TIMEOUT:-120}

log() { printf '[testenv] %s\n' "$*" >&2; }

# Prints the pid of a component we started, only if that process is alive and still ours: its command
# line names our state dir, so a recycled pid of an unrelated process is never signalled.
live_pid() {
  local f="$state/pids/$1.pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$state" || return 1
  echo "$pid"
}

stop_component() {
  local name=$1 pid i
  pid=$(live_pid "$name") || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "$name (pid $pid) ignored SIGTERM for 10s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "$name (pid $pid) is still alive after SIGKILL"
  return 1
}

start() {  # name command...
  local name=$1
  shift
  # setsid: a Ctrl-C in the terminal (or in the pytest run that called us) must not stop the cluster.
  # 9<&-: the daemons must not inherit the lock, or they would hold it for their whole life.
  setsid "$@" >"$state/logs/$name.log" 2>&1 </dev/null 9<&- &
  local pid=$! i
  echo "$pid" >"$state/pids/$name.pid"
  # Until the child has exec'd, /proc/PID/cmdline is this script's and live_pid takes the component for
  # gone: on a loaded machine a health check failing fast then reported "exited" (R5's testenv in CI).
  for i in $(seq 1 200); do
    [ -r "/proc/$pid/cmdline" ] || break
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$state" && break
    sleep 0.05
  done
}

# Polls until the command succeeds; fails early when the component it waits on has exited.
wait_until() {  # component what command...
  local component=$1 what=$2 deadline=$((SECONDS + timeout))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ! live_pid "$component" >/dev/null; then
      log "$component exited while waiting for $what"
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

kubectl_() { "$state/bin/kubectl" --kubeconfig "$state/kubeconfig" "$@"; }

# shellcheck source=node/lib.sh
source "$testenv_here/node/lib.sh"

# The real node stops first (it is the API server's client and must undo its changes to the machine),
# then the API server's other clients together, then the API server, then etcd.
stop_all() {
  local name rc=0 jobs=()
  node_stop || rc=1
  for name in kwok kube-scheduler kube-controller-manager; do
    stop_component "$name" &
    jobs+=($!)
  done
  for j in "${jobs[@]}"; do wait "$j" || rc=1; done
  stop_component kube-apiserver || rc=1
  stop_component etcd || rc=1
  if [ -d "$state/node" ]; then node_teardown_network || rc=1; fi
  return $rc
}
