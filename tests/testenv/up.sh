#!/usr/bin/env bash
# Starts the test control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (fake
# nodes, pod lifecycles) and, by default, a real node (containerd + kubelet + kube-proxy: node/lib.sh) that
# runs real containers. Builds missing binaries first (build.sh); installs the node's Debian packages
# (runc, CNI plugins, iptables, conntrack) when missing.
# State (kubeconfig, pki, logs, pids, data, ports) lives in .testenv/; `down.sh` removes it and undoes
# every change the real node made to the machine.
# Returns once /readyz is OK, every node is Ready (the real node's Services work) and the default
# ServiceAccount exists. Idempotent: when the testenv is already up and healthy, it does nothing.
#
# Env: TESTENV_BIN_DIR (use binaries there; build only what is missing), TESTENV_NODES (fake nodes, default 1),
#      TESTENV_REAL_NODE (1: start the real node; 0: kwok only, a quicker start. Default 1 for .testenv/,
#      0 for a private TESTENV_DIR, as only one real node fits on a machine),
#      TESTENV_DEFAULT_RUN_DURATION (how long a pod "runs" without an annotation, default 1s),
#      TESTENV_TIMEOUT (seconds to wait for each component, default 120), TESTENV_DIR (state dir),
#      TESTENV_CONTROLLER_QPS (integer client QPS of kube-controller-manager and kube-scheduler, burst twice
#      that; unset: their defaults, 20 and 50), TESTENV_CONCURRENT_JOB_SYNCS (Job controller workers, default 5).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

# up.sh and down.sh never run concurrently (two pytest sessions may both call `make testenv`).
exec 9<"$testenv_here/lib.sh"
flock 9

nodes=${TESTENV_NODES:-1}
default_duration=${TESTENV_DEFAULT_RUN_DURATION:-1s}
timeout=${TESTENV_TIMEOUT:-120}
# Benchmarks run thousands of Jobs: the controllers' default client QPS would be the bottleneck, not the operator.
controller_flags=()
if [ -n "${TESTENV_CONTROLLER_QPS:-}" ]; then
  controller_flags+=(--kube-api-qps="$TESTENV_CONTROLLER_QPS" --kube-api-burst="$((TESTENV_CONTROLLER_QPS * 2))")
fi
job_syncs=()
if [ -n "${TESTENV_CONCURRENT_JOB_SYNCS:-}" ]; then
  job_syncs+=(--concurrent-job-syncs="$TESTENV_CONCURRENT_JOB_SYNCS")
fi
kubeconfig=$state/kubeconfig
pki=$state/pki
# The real node (node/lib.sh) is on by default for the project's testenv (.testenv/) and off for private
# ones (TESTENV_DIR: the reliability suite's, the benchmarks'): only one real node fits on a machine.
if [ -z "${TESTENV_REAL_NODE:-}" ]; then
  if [ "$state" = "$testenv_root/.testenv" ]; then TESTENV_REAL_NODE=1; else TESTENV_REAL_NODE=0; fi
fi
case $TESTENV_REAL_NODE in 0 | 1) ;; *) log "TESTENV_REAL_NODE must be 0 or 1, not '$TESTENV_REAL_NODE'"; exit 2 ;; esac
real_node=$TESTENV_REAL_NODE
# With the real node, the API server serves on the node's address: pods reach it there through the
# `kubernetes` Service (whose Endpoints need a non-loopback address). Without it, on loopback only.
api_host=127.0.0.1
[ "$real_node" = 1 ] && api_host=$node_ip
# Go clients proxy every non-loopback address when HTTPS_PROXY is set; ours must stay on this machine.
if [ "$real_node" = 1 ] && [ -n "${HTTPS_PROXY:-}${https_proxy:-}${HTTP_PROXY:-}${http_proxy:-}" ]; then
  no_proxy_before=${NO_PROXY:-${no_proxy:-}}
  export NO_PROXY="${no_proxy_before:+$no_proxy_before,}$node_ip,$service_cidr,$pod_cidr"
  export no_proxy="$NO_PROXY"
fi

is_up() {
  local name
  for name in "${components[@]}"; do live_pid "$name" >/dev/null || return 1; done
  if node_enabled; then
    for name in "${node_components[@]}"; do live_pid "$name" >/dev/null || return 1; done
  fi
  kubectl_ get --raw /readyz >/dev/null 2>&1
}

on_failure() {
  local keep name
  keep=$(mktemp -d "${TMPDIR:-/tmp}/taskjob-testenv-failed.XXXXXX")
  cp -r "$state/logs" "$keep/" 2>/dev/null || true
  for name in "${node_components[@]}" "${components[@]}"; do
    [ -s "$state/logs/$name.log" ] || continue
    log "---- last lines of $name.log ----"
    tail -n 15 "$state/logs/$name.log" >&2
  done
  stop_all || true
  rm -rf "$state"
  log "testenv failed to start; full logs kept in $keep"
}

# Free ports below the kernel's ephemeral range (32768+ by default): a port the kernel hands out to
# bind(0) is released here and bound again seconds later, while the outgoing connections of the API
# server and the tests draw from that range; one such collision killed a kube-controller-manager at start.
pick_ports() {
  python3 - <<'EOF'
import random
import socket
low = 20000
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        high = int(f.read().split()[0])
except (OSError, ValueError, IndexError):
    high = 32768
high = max(high, low + 1000)
names = ["ETCD_PORT", "ETCD_PEER_PORT", "APISERVER_PORT", "KCM_PORT", "SCHEDULER_PORT", "KWOK_PORT",
         "KUBELET_PORT", "KUBELET_HEALTHZ_PORT", "KUBE_PROXY_HEALTHZ_PORT", "KUBE_PROXY_METRICS_PORT"]
chosen: list = []
while len(chosen) < len(names):
    port = random.randrange(low, high)
    if port in chosen:
        continue
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    chosen.append(port)
for name, port in zip(names, chosen):
    print(f"{name}={port}")
EOF
}

make_pki() {
  local ca_subj="/CN=taskjob-testenv-ca"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "$ca_subj" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  issue() {  # name subject extensions
    openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
    openssl x509 -req -days 3650 -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -out "$pki/$1.crt" -extfile <(printf '%s\n' "$3") 2>/dev/null
    rm -f "$pki/$1.csr"
  }
  issue apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$node_ip,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  # system:masters: the admin identity of the tests (and of the controllers: this is a test cluster).
  issue admin "/O=system:masters/CN=testenv-admin" "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  # The aggregation layer's client identity: lets the API server set requestheader CA data, which
  # kube-controller-manager and kube-scheduler otherwise log as missing.
  issue front-proxy-client "/CN=front-proxy-client" "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  # Service-account token signing key pair: TokenRequest (apiserver) and legacy token controller (KCM).
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  if [ "$real_node" = 1 ]; then node_pki; fi
}

write_kubeconfig() {
  b64() { base64 -w0 <"$1"; }
  cat >"$kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: https://$api_host:$APISERVER_PORT
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: testenv-admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
contexts:
- name: testenv
  context: {cluster: testenv, user: testenv-admin, namespace: default}
current-context: testenv
EOF
  chmod 600 "$kubeconfig"
}

node_manifest() {
  local i name
  for i in $(seq 0 $((nodes - 1))); do
    name=kwok-node-$i
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
EOF
    # With the real node up, only pods that tolerate this land on kwok's nodes: the `namespace` fixture
    # of tests/conftest.py adds the toleration (and a node selector) to its namespaces; a user's
    # manifest in a plain namespace runs on the real node, as on kind.
    if [ "$real_node" = 1 ]; then
      cat <<EOF
spec:
  taints:
  - {key: $node_label, value: kwok, effect: NoSchedule}
EOF
    fi
  done
}

# ---- main ----
if [ -d "$state" ]; then
  if [ -x "$state/bin/kubectl" ] && is_up; then
    log "already up: $kubeconfig"
    exit 0
  fi
  log "found a stopped or half-started testenv in $state; restarting it"
  stop_all
  rm -rf "$state"
fi

binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm)
if [ "$real_node" = 1 ]; then
  node_check_free
  node_install_deps
  binaries+=(kubelet kube-proxy containerd containerd-shim-runc-v2 ctr crictl)
fi
bin=$(TESTENV_BUILD_NODE=$real_node "$testenv_here/build.sh" | tail -n 1)
mkdir -p "$state"/{bin,pki,logs,pids,data,kwok,kwok-home}
started=false
trap '[ "$started" = true ] || on_failure' EXIT
for b in "${binaries[@]}"; do
  ln -s "$bin/$b" "$state/bin/$b"
done
pick_ports >"$state/ports.env"
# shellcheck disable=SC1091
source "$state/ports.env"
make_pki
write_kubeconfig
sed "s/__DEFAULT_RUN_DURATION__/$default_duration/g" "$testenv_here/kwok/stages.yaml" >"$state/kwok/stages.yaml"
apiserver_flags=(--endpoint-reconciler-type=none)
if [ "$real_node" = 1 ]; then
  mkdir -p "$state/node"
  touch "$state/node/enabled"
  node_setup_network
  # The `kubernetes` Endpoints get the node address (the default reconciler), and the API server calls
  # the kubelet (logs, exec) with a client certificate the kubelet's x509 authenticator accepts.
  # The node's Hostname address (its name) resolves nowhere: dial its InternalIP.
  apiserver_flags=(--kubelet-client-certificate="$pki/apiserver-kubelet-client.crt"
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" --kubelet-preferred-address-types=InternalIP,Hostname)
fi
log "starting on $api_host (apiserver :$APISERVER_PORT, etcd 127.0.0.1:$ETCD_PORT); binaries from $bin"

start etcd "$bin/etcd" --name testenv --data-dir "$state/data/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "testenv=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync --quota-backend-bytes=$((4 * 1024 * 1024 * 1024)) --log-level=warn
wait_until etcd "etcd health" curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

# Without the real node: --endpoint-reconciler-type=none, as Endpoints reject loopback addresses and nothing
# dials the kubernetes Service. PodNodeSelector and PodTolerationRestriction read the namespace annotations
# that keep ordinary tests' pods on kwok's nodes (tests/conftest.py).
start kube-apiserver "$bin/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address="$api_host" --advertise-address="$api_host" --secure-port="$APISERVER_PORT" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --authorization-mode=Node,RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 \
  --requestheader-client-ca-file="$pki/ca.crt" --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$pki/front-proxy-client.crt" --proxy-client-key-file="$pki/front-proxy-client.key" \
  --enable-admission-plugins=NodeRestriction,PodNodeSelector,PodTolerationRestriction \
  "${apiserver_flags[@]}" --allow-privileged=true --profiling=false
wait_until kube-apiserver "kube-apiserver /readyz" kubectl_ get --raw /readyz

kc=(--kubeconfig="$kubeconfig" --authentication-kubeconfig="$kubeconfig" --authorization-kubeconfig="$kubeconfig")
start kube-controller-manager "$bin/kube-controller-manager" "${kc[@]}" \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false --profiling=false \
  --controllers='*' --cluster-name=testenv --service-cluster-ip-range=10.96.0.0/16 \
  --root-ca-file="$pki/ca.crt" --service-account-private-key-file="$pki/sa.key" \
  --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
  ${controller_flags[@]+"${controller_flags[@]}"} ${job_syncs[@]+"${job_syncs[@]}"}
start kube-scheduler "$bin/kube-scheduler" "${kc[@]}" \
  --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --leader-elect=false --profiling=false \
  ${controller_flags[@]+"${controller_flags[@]}"}
# HOME: kwok also reads ~/.kwok/kwok.yaml when it exists; only our stage file must count.
start kwok env HOME="$state/kwok-home" "$bin/kwok" --kubeconfig="$kubeconfig" --config="$state/kwok/stages.yaml" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --cidr=10.244.0.1/16 --node-ip=10.0.0.1 --node-lease-duration-seconds=40 \
  --server-address="127.0.0.1:$KWOK_PORT"

wait_until kube-controller-manager "kube-controller-manager /healthz" \
  curl -fsSk "https://127.0.0.1:$KCM_PORT/healthz"
wait_until kube-scheduler "kube-scheduler /healthz" curl -fsSk "https://127.0.0.1:$SCHEDULER_PORT/healthz"
wait_until kwok "kwok /healthz" curl -fsS "http://127.0.0.1:$KWOK_PORT/healthz"
node_manifest | kubectl_ apply -f - >/dev/null
wait_until kwok "$nodes fake node(s) Ready" kubectl_ wait --for=condition=Ready node -l type=kwok --timeout=5s
wait_until kube-controller-manager "the default ServiceAccount" kubectl_ -n default get serviceaccount default
if [ "$real_node" = 1 ]; then
  node_start
  log "real node $node_name Ready at $node_ip (containerd socket $containerd_sock)"
fi
started=true

log "up: kubeconfig $kubeconfig"
log "use: export PATH=$state/bin:\$PATH KUBECONFIG=$kubeconfig"
