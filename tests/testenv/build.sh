#!/usr/bin/env bash
# Builds the test control plane's binaries from Go modules (no release downloads are reachable here).
# Output: $TESTENV_BIN_DIR (default: a cache dir keyed by versions.env), printed on the last line.
# Already-built binaries are kept; only missing ones are built.
# TESTENV_BUILD_NODE=0: skip the real node's binaries (kubelet, kube-proxy, containerd, ctr, crictl).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

key=$(sha256sum "$here/versions.env" | cut -c1-12)
cache_root=${TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskjob-testenv}
bin=${TESTENV_BIN_DIR:-$cache_root/bin-$key}
mkdir -p "$bin"
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local

build_node=${TESTENV_BUILD_NODE:-1}

need() { for b in "$@"; do [ -x "$bin/$b" ] || return 0; done; return 1; }
missing() { for b in "$@"; do [ -x "$bin/$b" ] || echo "$b"; done; }
log() { printf '[testenv build] %s\n' "$*" >&2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# k8s.io/kubernetes replaces every staging module with a local path, so `go install ...@v` fails.
# A throwaway module requires it and points each staging module at its published v0.Y.Z tag.
build_kubernetes() {  # binary names (cmd/NAME of k8s.io/kubernetes)
  local kv=$KUBERNETES_VERSION minor stage_v mod pkgs=()
  for b in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
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
  log "building $* $kv (cold: tens of minutes)"
  go get "k8s.io/kubernetes/cmd/kube-apiserver@$kv" >/dev/null 2>&1 || true
  go build -trimpath -ldflags "-s -w $ld" -o "$bin/" "${pkgs[@]}"
}

# containerd 2.x: its daemon, the runc shim it starts for each pod, and ctr (image import). The btrfs,
# devmapper and zfs snapshotters need cgo and are not used (overlayfs is).
build_containerd() {
  local mod="$work/containerd" m=github.com/containerd/containerd/v2
  mkdir -p "$mod"; cd "$mod"
  go mod init taskjob.dev/testenv-containerd >/dev/null 2>&1
  go get "$m@$CONTAINERD_VERSION" >/dev/null
  log "building containerd, containerd-shim-runc-v2, ctr $CONTAINERD_VERSION"
  go build -trimpath -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w -X $m/version.Version=$CONTAINERD_VERSION" -o "$bin/" \
    "$m/cmd/containerd" "$m/cmd/containerd-shim-runc-v2" "$m/cmd/ctr"
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

k8s_binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
[ "$build_node" = 1 ] && k8s_binaries+=(kubelet kube-proxy)
if need "${k8s_binaries[@]}"; then
  # shellcheck disable=SC2046  # names without spaces
  build_kubernetes $(missing "${k8s_binaries[@]}")
fi
if need etcd; then
  build_module_main etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3
fi
if need kwok; then
  build_module_main kwok sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok \
    "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
fi
# helm's default Kubernetes version (what `helm template` assumes without --kube-version) is set by ldflags in
# its own Makefile; without them it is v1.20 and the chart's kubeVersion (>=1.26) refuses it. We set the
# testenv's version. The stamp rebuilds a helm cached before this rule (its cache key did not change).
helm_kube=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
if need helm || [ "$(cat "$bin/helm.kube-minor" 2>/dev/null)" != "$helm_kube" ]; then
  build_module_main helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$helm_kube -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$helm_kube"
  echo "$helm_kube" >"$bin/helm.kube-minor"
fi
if [ "$build_node" = 1 ]; then
  if need containerd containerd-shim-runc-v2 ctr; then build_containerd; fi
  if need crictl; then
    build_module_main crictl sigs.k8s.io/cri-tools "$CRI_TOOLS_VERSION" sigs.k8s.io/cri-tools/cmd/crictl \
      "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION"
  fi
fi
log "binaries in $bin"
echo "$bin"
