#!/usr/bin/env bash
# `make images`: the operator and runner images built with `docker build` as the README says, on CI's
# stand-in bases (bases.sh), then loaded onto the testenv's real node when it has one.
#   taskjob-operator:0.1.0   operator/Dockerfile, context the repository root
#   taskjob-runner:0.1.0     task-images/runner/Dockerfile, context task-images/runner
#   busybox:1.36             the examples' image (stand-in, bases.sh)
# Starts our Docker engine when it is not up (docker.sh up); `make docker-down` stops it.
# Env: TASKJOB_PUBLIC_BASES=1 builds on the Dockerfiles' default bases (python:3.11-slim, python:3.12-slim),
#      which must then be in the engine already (no pull is attempted); TASKJOB_IMAGES_LOAD=0 skips loading.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
images_lock
cd "$images_root"

start=$SECONDS
"$images_here/docker.sh" up
t0=$SECONDS
base_args=()
if [ "${TASKJOB_PUBLIC_BASES:-0}" = 1 ]; then
  # The legacy builder would pull a missing base from Docker Hub: refuse instead.
  for base in python:3.11-slim python:3.12-slim; do
    docker_ image inspect "$base" >/dev/null 2>&1 || {
      log "TASKJOB_PUBLIC_BASES=1 but $base is not in the engine (docker load it first; nothing is pulled)"
      exit 1
    }
  done
else
  "$images_here/bases.sh"
  base_args=(--build-arg "BASE_IMAGE=${TASKJOB_PYTHON_BASE:-taskjob-ci/python:3.11-bookworm}")
fi
t1=$SECONDS
# A proxy of this machine reaches the build through Docker's predefined build args, which are not stored in the
# image; builds share the host's network (the engine has no bridge), so pip reaches PyPI as the host does.
proxy_args=()
for v in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
  [ -z "${!v:-}" ] || proxy_args+=(--build-arg "$v")
done

build() {  # tag dockerfile context
  local tag=$1 dockerfile=$2 context=$3 t=$SECONDS buildlog
  buildlog=$images_cache/build-$(echo "$tag" | tr '/:' '__').log
  if ! docker_ build --network host --pull=false "${base_args[@]}" "${proxy_args[@]}" \
      -f "$dockerfile" -t "$tag" "$context" >"$buildlog" 2>&1; then
    log "docker build of $tag failed; the end of $buildlog:"
    tail -n 30 "$buildlog" >&2
    return 1
  fi
  log "$tag built in $((SECONDS - t))s ($(docker_ image inspect --format '{{.Size}}' "$tag" | numfmt --to=iec-i --suffix=B))"
}
build taskjob-runner:0.1.0 task-images/runner/Dockerfile task-images/runner
build taskjob-operator:0.1.0 operator/Dockerfile .
t2=$SECONDS
log "images ready in $((SECONDS - start))s (engine $((t0 - start))s, bases $((t1 - t0))s, docker build $((t2 - t1))s)"

images=(taskjob-operator:0.1.0 taskjob-runner:0.1.0 busybox:1.36)
loader=$images_root/tests/testenv/load-image.sh
testenv_dir=${TESTENV_DIR:-$images_root/.testenv}
if [ "${TASKJOB_IMAGES_LOAD:-1}" = 0 ]; then
  log "not loading the images onto a node (TASKJOB_IMAGES_LOAD=0)"
elif [ ! -x "$loader" ]; then
  log "not loading the images onto a node: tests/testenv/load-image.sh does not exist yet (no real node)"
elif [ ! -f "$testenv_dir/kubeconfig" ]; then
  log "not loading the images onto a node: the testenv is not up (make testenv, then make images)"
elif [ ! -f "$testenv_dir/pids/containerd.pid" ]; then
  log "not loading the images onto a node: the testenv runs without its real node"
else
  # The loader saves each image with the docker client it is given, from the engine DOCKER_HOST names (ours).
  TESTENV_DOCKER=$docker_bin "$loader" "${images[@]}"
  log "loaded onto the testenv's node: ${images[*]}"
fi
