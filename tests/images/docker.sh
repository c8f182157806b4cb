#!/usr/bin/env bash
# Our own Docker engine for building and running the project's images (docs/testing.md, "Images").
#   tests/images/docker.sh up     install Debian's docker.io if dockerd is missing, start dockerd, wait for it
#   tests/images/docker.sh down   stop it; no process, mount, network link, iptables rule or cgroup is left
#   tests/images/docker.sh check-down   exit 1, listing it, if anything of the engine is left
#   tests/images/docker.sh env    print `export DOCKER_HOST=...` for a shell that wants to use it
# The engine is ours alone: its own socket, pidfile, exec root and data root, no bridge, no iptables, no
# IP forwarding (so it changes nothing in the host's network); builds and containers use --network host
# or none. Idempotent: `up` when up and `down` when down do nothing.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
images_lock

timeout=${TASKJOB_DOCKER_TIMEOUT:-60}

install_engine() {
  log "dockerd missing: installing Debian's docker.io with apt"
  # Installing must not start Debian's own service (its bridge and iptables rules): policy-rc.d says no.
  local own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  local rc=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
      --no-install-recommends docker.io; } >&2 || rc=$?
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
  return $rc
}

up() {
  if engine_pid >/dev/null && engine_answers; then return 0; fi
  if engine_pid >/dev/null; then
    log "dockerd (pid $(engine_pid)) runs but does not answer; stopping it first"
    down
  fi
  [ -x /usr/sbin/dockerd ] && [ -x "$docker_bin" ] || install_engine
  mkdir -p "$engine_run" "$engine_data"
  # An empty daemon.json of our own: a machine-wide /etc/docker/daemon.json must not change our engine.
  echo '{}' >"$engine_run/daemon.json"
  # 8<&-: the daemon must not inherit our lock's descriptor (it would hold the lock while it runs).
  log "starting dockerd (socket $engine_sock, data $engine_data, log $engine_log)"
  setsid /usr/sbin/dockerd \
    --config-file="$engine_run/daemon.json" \
    --host="unix://$engine_sock" \
    --pidfile="$engine_pidfile" \
    --exec-root="$engine_run/exec" \
    --data-root="$engine_data" \
    --group=root \
    --cgroup-parent="$engine_cgroup" \
    --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --userland-proxy=false \
    --storage-driver=overlay2 \
    </dev/null >"$engine_log" 2>&1 8<&- &
  local started=$! deadline=$((SECONDS + timeout))
  until engine_answers; do
    if ! kill -0 "$started" 2>/dev/null; then
      log "dockerd exited while starting; the end of $engine_log:"
      tail -n 20 "$engine_log" >&2
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "dockerd did not answer within ${timeout}s; the end of $engine_log:"
      tail -n 20 "$engine_log" >&2
      return 1
    fi
    sleep 0.2
  done
  log "dockerd is up: $(docker_ version --format 'server {{.Server.Version}}, client {{.Client.Version}}')"
}

our_cgroups() { find /sys/fs/cgroup -maxdepth 5 -type d -name "$engine_cgroup" -prune 2>/dev/null; }

down() {
  local pid i
  if pid=$(engine_pid); then
    # Containers left running would keep mounts and cgroups: remove them before the engine stops.
    local ids
    ids=$(docker_ ps -aq 2>/dev/null || true)
    [ -z "$ids" ] || docker_ rm -f $ids >/dev/null 2>&1 || true
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 300); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "dockerd (pid $pid) ignored SIGTERM for 30s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  # dockerd's own containerd (a child it started) and any shim that outlived it: found by our exec root.
  local p
  for p in $(pgrep -f -- "$engine_run/" || true); do
    kill -KILL "$p" 2>/dev/null || true
  done
  # Mounts under our directories (overlay layers of containers, shm), deepest first.
  local m
  for m in $(awk -v a="$engine_run" -v b="$engine_data" 'index($2, a) == 1 || index($2, b) == 1 {print $2}' \
      /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  # The cgroups our containers were put in (empty once the containers are gone).
  # A relative parent lands under dockerd's own cgroup, which in some hierarchies (memory here) is nested.
  local d
  for d in $(our_cgroups); do
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || log "could not remove cgroup $d"
  done
  rm -rf "$engine_run"
  # dockerd makes /run/docker/plugins even with its own exec root; removed only when empty (not someone else's).
  rmdir /run/docker/plugins /run/docker 2>/dev/null || true
}

# Lists what of our engine is still on the machine; exits 1 when anything is. For tests of `down`.
check_down() {
  local left=()
  pgrep -f -- "$engine_run/" >/dev/null && left+=("processes: $(pgrep -a -f -- "$engine_run/" | tr '\n' ';')")
  awk -v a="$engine_run" -v b="$engine_data" 'index($2, a) == 1 || index($2, b) == 1 {f=1} END {exit !f}' \
    /proc/self/mounts && left+=("mounts under $engine_run or $engine_data")
  [ -z "$(our_cgroups)" ] || left+=("cgroups: $(our_cgroups | tr '\n' ' ')")
  [ -e /sys/class/net/docker0 ] && left+=("network link docker0")
  if command -v iptables >/dev/null; then
    { iptables -S; iptables -t nat -S; } 2>/dev/null | grep -q DOCKER && left+=("iptables chains or rules named DOCKER")
  fi
  [ -e "$engine_run" ] && left+=("$engine_run")
  if [ ${#left[@]} -gt 0 ]; then
    printf 'left behind: %s\n' "${left[@]}" >&2
    return 1
  fi
  log "nothing of the engine is left"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  check-down) check_down ;;
  env) echo "export DOCKER_HOST=unix://$engine_sock DOCKER_BUILDKIT=0" ;;
  *) echo "usage: $0 up|down|check-down|env" >&2; exit 2 ;;
esac
