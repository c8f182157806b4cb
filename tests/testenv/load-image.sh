#!/usr/bin/env bash
# Puts images onto the testenv's real node: the analog of `kind load docker-image`. Each argument is an
# image of the local Docker engine (`docker save IMAGE`) or an image archive file (`docker save` or OCI
# format). Pods then use it by the same name, e.g. image: taskjob-runner:0.1.0, without any pull
# (a tag other than :latest means imagePullPolicy IfNotPresent).
#
#   tests/testenv/load-image.sh taskjob-operator:0.1.0 taskjob-runner:0.1.0 /path/to/image.tar
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

[ $# -gt 0 ] || { log "usage: load-image.sh IMAGE|ARCHIVE..."; exit 2; }
node_enabled && live_pid containerd >/dev/null || {
  log "the real node of $state is not running; start it with \`make testenv\`"
  exit 1
}
# TESTENV_DOCKER: the docker client to save images with (DOCKER_HOST picks the engine, as for docker).
docker=${TESTENV_DOCKER:-docker}
for image in "$@"; do
  if [ -f "$image" ]; then
    ctr_ images import "$image" >/dev/null
  else
    command -v "$docker" >/dev/null || { log "$image is no file, and there is no $docker to save it from"; exit 1; }
    "$docker" image inspect "$image" >/dev/null || { log "no image $image in the Docker engine"; exit 1; }
    # pipefail: a failed save fails the load; ctr reads the archive from stdin.
    "$docker" save "$image" | ctr_ images import - >/dev/null
  fi
  log "loaded $image onto $node_name"
done
