#!/usr/bin/env bash
# Builds the test control plane's binaries from Go modules (no release downloads are reachable here).
# Output: $TESTENV_BIN_DIR (default: a cache dir keyed by versions.env), printed on the last line.
# Already-built binaries are kept; only missing ones are built.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

key=$(sha256sum "$here/versions.env" | cut -c1-12)
cache_root=${TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskjob-testenv}
bin=${TESTENV_BIN_DIR:-$cache_root/bin-$key}
mkdir -p "$bin"
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local

need() { for b in "$@"; do [ -x "$bin/$b" ] || return 0; done; return 1; }
log() { printf '[testenv build] %s\n' "$*" >&2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# k8s.io/kubernetes replaces every staging module with a local path, so `go install ...@v` fails.
# A throwaway module requires it and points each staging module at its published v0.Y.Z tag.
build_kubernetes() {
  local kv=$KUBERNETES_VERSION minor stage_v mod
  minor=$(echo "$kv" | cut -d. -f2)
  stage_v="v0.${kv#v1.}"
  mod="$work/k8s"; mkdir -p "$mod"; cd "$mod"
  go mod init taskjob.dev/testenv-k8s >/dev/null 2>&1
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$kv" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "require k8s.io/kubernetes $kv"
    grep -E '^\s*k8s.io/[a-z0-9-]+ => ./staging/' "$gomod" | awk -v v="$stage_v" '{print "replace " $1 " => " $1 " " v}'
  } >> go.mod
  go mod download >/dev/null 2>&1 || true
  local now; now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local ld=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$kv -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=$now -X $p.gitCommit=0000000000000000000000000000000000000000"
  done
  log "building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl $kv (cold: tens of minutes)"
  go get "k8s.io/kubernetes/cmd/kube-apiserver@$kv" >/dev/null 2>&1 || true
  go build -trimpath -ldflags "-s -w $ld" -o "$bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
}

# A plain module whose dependencies resolve by MVS; replace directives inside etcd's own go.mod
# would otherwise break `go install`.
build_module_main() {  # name module version package ldflags
  local name=$1 module=$2 version=$3 pkg=$4 ld=${5:-}
  local mod="$work/$name"; mkdir -p "$mod"; cd "$mod"
  go mod init "taskjob.dev/testenv-$name" >/dev/null 2>&1
  go get "$module@$version" >/dev/null
  log "building $name $version"
  go build -trimpath -ldflags "-s -w $ld" -o "$bin/$name" "$pkg"
}

if need kube-apiserver kube-controller-manager kube-scheduler kubectl; then build_kubernetes; fi
if need etcd; then
  build_module_main etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3
fi
if need kwok; then
  build_module_main kwok sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok \
    "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
fi
if need helm; then
  build_module_main helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
fi
log "binaries in $bin"
echo "$bin"
