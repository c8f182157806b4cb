# Shared by up.sh and down.sh: where the state lives and how our processes are found and stopped.
# shellcheck shell=bash
testenv_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
testenv_root=$(cd "$testenv_here/../.." && pwd)
state=${TESTENV_DIR:-$testenv_root/.testenv}
components=(kwok kube-scheduler kube-controller-manager kube-apiserver etcd)

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

# The API server's clients stop together, then the API server, then etcd.
stop_all() {
  local name rc=0 jobs=()
  for name in kwok kube-scheduler kube-controller-manager; do
    stop_component "$name" &
    jobs+=($!)
  done
  for j in "${jobs[@]}"; do wait "$j" || rc=1; done
  stop_component kube-apiserver || rc=1
  stop_component etcd || rc=1
  return $rc
}
