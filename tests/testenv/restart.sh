#!/usr/bin/env bash
# Restarts components of a running testenv with the command lines they were started with: stops them
# (SIGTERM, as down.sh does, or SIGKILL with --kill, as a crash; clients before servers), keeps them down
# for --down SECONDS, starts them again (servers first) and returns once each is healthy again.
# For the reliability suite (R5).
#
#   TESTENV_DIR=/tmp/my-testenv tests/testenv/restart.sh [--kill] [--down SECONDS] kube-apiserver etcd
#
# Components: etcd, kube-apiserver, kube-controller-manager, kube-scheduler (kwok is started with a
# private HOME, which its command line does not show). Never run it against a testenv others are using.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

down=0
kill=false
while [ $# -gt 0 ]; do
  case $1 in
    --down) down=$2; shift 2 ;;
    --kill) kill=true; shift ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { log "usage: restart.sh [--kill] [--down SECONDS] component..."; exit 2; }
timeout=${TESTENV_TIMEOUT:-120}
# shellcheck disable=SC1091
source "$state/ports.env"

# Same lock as up.sh/down.sh: never restart into a testenv being started or removed.
exec 9<"$testenv_here/lib.sh"
flock 9

order=()  # the requested components, servers last (they stop last and start first)
for name in kube-scheduler kube-controller-manager kube-apiserver etcd; do
  for wanted in "$@"; do [ "$wanted" = "$name" ] && order+=("$name"); done
done
for wanted in "$@"; do
  case " ${order[*]} " in *" $wanted "*) ;; *) log "cannot restart $wanted"; exit 2 ;; esac
done

declare -A cmdline
for name in "${order[@]}"; do
  pid=$(live_pid "$name") || { log "$name is not running in $state"; exit 1; }
  cmdline[$name]=$(tr '\0' '\n' <"/proc/$pid/cmdline")
done
for name in "${order[@]}"; do
  if [ "$kill" = true ]; then
    pid=$(live_pid "$name")
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    log "killed $name"
  else
    stop_component "$name"
    log "stopped $name"
  fi
done
sleep "$down"

healthy() {  # name
  case $1 in
    etcd) curl -fsS "http://127.0.0.1:$ETCD_PORT/health" ;;
    kube-apiserver) "$state/bin/kubectl" --kubeconfig "$state/kubeconfig" get --raw /readyz ;;
    kube-controller-manager) curl -fsSk "https://127.0.0.1:$KCM_PORT/healthz" ;;
    kube-scheduler) curl -fsSk "https://127.0.0.1:$SCHEDULER_PORT/healthz" ;;
  esac
}

for ((i = ${#order[@]} - 1; i >= 0; i--)); do
  name=${order[$i]}
  mapfile -t cmd <<<"${cmdline[$name]}"
  setsid "${cmd[@]}" >>"$state/logs/$name.log" 2>&1 </dev/null 9<&- &
  echo $! >"$state/pids/$name.pid"
  deadline=$((SECONDS + timeout))
  until healthy "$name" >/dev/null 2>&1; do
    live_pid "$name" >/dev/null || { log "$name exited while restarting; see $state/logs/$name.log"; exit 1; }
    [ $SECONDS -lt $deadline ] || { log "timed out after ${timeout}s waiting for $name"; exit 1; }
    sleep 0.2
  done
  log "restarted $name"
done
