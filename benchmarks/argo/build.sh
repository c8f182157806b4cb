#!/usr/bin/env bash
# Builds Argo Workflows' workflow-controller and argoexec from the Go module proxy, for benchmark B5 only
# (benchmarks/b5_argo.py). Argo is a PEER we measure against, never part of the product: the package lists
# mark github.com/argoproj/argo-workflows/v4 v4.0.5 'untested' with reported security flaws, so it runs
# only inside the throwaway benchmark bed (a loopback control plane and its real node), never in a chart.
# Output (last line): the cache dir with bin/workflow-controller, bin/argoexec, crds/*.yaml and
# argoexec-image.tar (image localhost/taskjob-bench/argoexec:VERSION, for tests/testenv/load-image.sh). Already-built files are kept.
set -euo pipefail
version=${ARGO_VERSION:-v4.0.5}
module=github.com/argoproj/argo-workflows/v4
out=${ARGO_BENCH_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/taskjob-bench/argo-$version}
mkdir -p "$out/bin" "$out/crds"
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local
root_dir=$(cd "$(dirname "$0")/../.." && pwd)
log() { printf '[argo build] %s\n' "$*" >&2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -x "$out/bin/workflow-controller" ] || [ ! -x "$out/bin/argoexec" ]; then
  # A throwaway module that requires Argo, so Argo's go.mod pins the dependencies (MVS) and the build
  # can point Argo at a patched copy of its source (below), which `go install pkg@v` could not.
  cd "$work"
  go mod init taskjob.dev/bench-argo >/dev/null 2>&1
  go get "$module@$version" >/dev/null
  log "building workflow-controller, argoexec $version (cold: about 3 min on 2 cores, Kubernetes libraries already in the build cache)"
  start=$(date +%s)
  ld="-s -w -X $module.version=$version"
  # The repository's workflow/executor/osspecific/signal_linux.go is a symlink to signal_darwin.go, and
  # module zips leave symlinks out, so argoexec fails with "undefined: Setpgid". The module cache may not
  # be overlaid, so the build uses a copy of the module source with that file restored.
  dir=$(go list -m -f '{{.Dir}}' "$module")
  cp -r "$dir" "$work/argo-src"; chmod -R u+w "$work/argo-src"
  cp "$work/argo-src/workflow/executor/osspecific/signal_darwin.go" "$work/argo-src/workflow/executor/osspecific/signal_linux.go"
  go mod edit -replace "$module=./argo-src"
  go build -trimpath -ldflags "$ld" -o "$out/bin/" "$module/cmd/workflow-controller" "$module/cmd/argoexec"
  log "built in $(( $(date +%s) - start )) s"
fi

dir=$(go mod download -json "$module@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
# The minimal CRDs are what Argo's own quick-start installs (schemas without the full validation).
cp "$dir"/manifests/base/crds/minimal/argoproj.io_*.yaml "$out/crds/"
chmod -R u+w "$out/crds"

# argoexec runs inside every workflow pod: the init container copies it into a shared volume
# (/var/run/argo), the wait sidecar reports the main container's outcome, and the main container runs the
# task's command under `/var/run/argo/argoexec emissary`. The pod spec calls it as plain `argoexec`, found
# on the image's PATH (/). A one-layer image archive of the static binary, packed by the testenv's own
# image-tar.py (no registry, no Docker engine needed); tests/testenv/load-image.sh puts it on the node.
image_tag=${ARGO_EXECUTOR_IMAGE:-localhost/taskjob-bench/argoexec:$version}
if [ ! -f "$out/argoexec-image.tar" ]; then
  : > "$work/keep"
  python3 "$root_dir/tests/testenv/node/image-tar.py" --tag "$image_tag" --entrypoint /argoexec \
    --file "$out/bin/argoexec:/argoexec" --file "$work/keep:/tmp/.keep" "$out/argoexec-image.tar"
fi
echo "$out"
