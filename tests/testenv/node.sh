#!/usr/bin/env bash
# Stops or starts only the real node of a running testenv (its control plane and the node's network
# interface stay): `node.sh stop` undoes every change the node made to this machine, `node.sh start`
# brings it back Ready, with the images loaded before (containerd's image store is kept).
# For tests (tests/cluster/test_real_node_cleanup.py); `make testenv` and `make testenv-down` do both.
#
#   [TESTENV_DIR=...] tests/testenv/node.sh stop|start
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] && case $1 in start | stop) ;; *) false ;; esac || { log "usage: node.sh start|stop"; exit 2; }
exec 9<"$testenv_here/lib.sh"
flock 9
node_enabled || { log "no real node in $state (started with TESTENV_REAL_NODE=0?)"; exit 1; }
# shellcheck disable=SC1091
source "$state/ports.env"
pki=$state/pki
case $1 in
  stop) node_stop ;;
  start)
    for name in "${node_components[@]}"; do
      live_pid "$name" >/dev/null && { log "$name is already running"; exit 1; }
    done
    node_start || { node_stop; exit 1; }
    ;;
esac
