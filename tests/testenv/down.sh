#!/usr/bin/env bash
# Stops every process of the test control plane (by the pids up.sh recorded) and removes .testenv/. The real
# node is stopped first and undoes its changes to the machine (node/lib.sh: node_stop, node_teardown_network).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

# Waits for a concurrent up.sh to finish, so it never starts processes into a directory being removed.
# (TESTENV_LOCK_HELD: called by an up.sh that holds the lock already, to undo a killed run's node.)
if [ -z "${TESTENV_LOCK_HELD:-}" ]; then
  exec 9<"$testenv_here/lib.sh"
  flock 9
fi

if [ ! -d "$state" ]; then
  log "not running (no $state)"
  exit 0
fi
stop_all || { log "some processes would not stop; keeping $state for inspection"; exit 1; }
rm -rf "$state"
log "stopped; removed $state"
