# Shared by docker.sh and build.sh: where our Docker engine lives and how its client is called.
# shellcheck shell=bash
images_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
images_root=$(cd "$images_here/../.." && pwd)
# Runtime state (socket, pidfile, containerd's state) goes away with `docker.sh down`; the data root
# (image layers, build cache) and the base images' recipes' outputs are a cache kept across runs.
engine_run=${TASKJOB_DOCKER_RUN:-/run/taskjob-docker}
images_cache=${TASKJOB_IMAGES_CACHE:-$HOME/.cache/taskjob-images}
engine_data=$images_cache/docker-data
engine_sock=$engine_run/docker.sock
engine_pidfile=$engine_run/dockerd.pid
engine_log=$images_cache/dockerd.log
# Containers of our engine get their cgroups under this parent, so `down` can remove what it created.
engine_cgroup=taskjob-docker
# Debian's client (the engine's own version): /usr/local/bin/docker on these machines is a newer client that
# would default to BuildKit (buildx); the legacy builder needs no frontend image from a registry.
docker_bin=/usr/bin/docker
export DOCKER_HOST=unix://$engine_sock
export DOCKER_BUILDKIT=0

# One of build.sh, bases.sh and docker.sh at a time (two test sessions may both run `make images`); a script
# called by one that holds the lock does not take it again.
images_lock() {
  [ -z "${TASKJOB_IMAGES_LOCKED:-}" ] || return 0
  exec 8<"$images_here/lib.sh"
  flock 8
  export TASKJOB_IMAGES_LOCKED=1
}

log() { printf '[images] %s\n' "$*" >&2; }
docker_() { "$docker_bin" "$@"; }

# The pid of our dockerd, only if it is alive and still ours (its command line names our socket).
engine_pid() {
  local pid
  [ -f "$engine_pidfile" ] || return 1
  pid=$(cat "$engine_pidfile")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$engine_sock" || return 1
  echo "$pid"
}

engine_answers() { [ -S "$engine_sock" ] && docker_ version >/dev/null 2>&1; }
