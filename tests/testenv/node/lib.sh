# The real node of the testenv: containerd + kubelet + kube-proxy on this machine, joined to the testenv's
# API server, so pods run real containers (docs/testing.md, "The real node"). Sourced by ../lib.sh;
# uses $state, $testenv_here, log, live_pid and stop_component from there.
#
# One real node per machine: its network interfaces, address, runtime dir and cgroups have fixed names.
# Everything it changes on the machine is recorded before it starts and undone by node_clean:
# processes, mounts, links, iptables chains, sysctls, cgroups and the few host paths the kubelet and
# CNI insist on (/var/lib/cni, /var/log/containers).
# shellcheck shell=bash

node_name=taskjob-real-node
node_label=taskjob.dev/testenv-node
# The kubelet refuses a loopback node IP, yet the API server must reach it (logs, exec) and pods must reach
# the API server through the `kubernetes` Service. So the node gets an address on an interface we create
# (a bridge without ports: the test machines' kernel has no dummy driver). The address is local to this
# machine (the kernel delivers to it like to 127.0.0.1; no packet leaves), and 198.18.0.0/15 is
# reserved for benchmarking (RFC 2544), so it collides with no real network.
node_ip=198.18.0.1
node_link=taskjob-node0
cni_bridge=taskjob-cni0
cni_network=taskjob-testenv
# Real pods get addresses here; kwok's fake pods use 10.244.0.0/16, so the two never share an IP.
pod_cidr=10.200.0.0/24
service_cidr=10.96.0.0/16
# Sockets and runtime state: short fixed paths (unix socket paths are limited to 108 bytes, and a pytest
# tmp TESTENV_DIR is long), taskjob-specific, so a Docker engine's /run/containerd is never touched.
node_run=/run/taskjob-testenv
containerd_sock=$node_run/containerd.sock
node_components=(kube-proxy kubelet containerd)
sysctls_touched=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
  kernel.keys.root_maxbytes net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
  net.bridge.bridge-nf-call-ip6tables net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
  net.netfilter.nf_conntrack_tcp_timeout_close_wait)
# Host paths that the kubelet (container log symlinks) and libcni (its result cache) write to, whatever
# their configuration says; node_clean removes what we added there.
host_paths=(/var/lib/cni /var/lib/cni/results /var/lib/cni/networks /var/log/containers /var/log/pods)

node_enabled() { [ -f "$state/node/enabled" ]; }

# Debian packages the node needs; installed when missing (CI starts from a fresh machine).
node_install_deps() {
  local missing=()
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  command -v gcc >/dev/null || missing+=(gcc)
  [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(libc6-dev)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# True when any process the testenv in $1 started is still running.
node_owner_alive() {
  local state=$1 c
  for c in "${components[@]}" "${node_components[@]}"; do
    live_pid "$c" >/dev/null && return 0
  done
  return 1
}

# Another testenv's real node on this machine would share our interfaces and paths: refuse early.
node_check_free() {
  local owner
  if [ -f "$node_run/owner" ]; then
    owner=$(cat "$node_run/owner")
    if [ "$owner" != "$state" ] && [ -d "$owner/node" ] && ! node_owner_alive "$owner"; then
      # A run killed outright (SIGKILL, a lost session) leaves its node's state with no process behind it:
      # undo it with its own record rather than make every later run on this machine fail.
      log "the real node of the testenv in $owner was left behind with none of its processes alive; undoing it"
      TESTENV_DIR=$owner TESTENV_LOCK_HELD=1 "$testenv_here/down.sh" || return 1
    fi
    if [ "$owner" != "$state" ] && [ -d "$owner/node" ]; then
      log "a real node of the testenv in $owner is running on this machine; stop it first" \
        "(TESTENV_DIR=$owner tests/testenv/down.sh) or start this one with TESTENV_REAL_NODE=0"
      return 1
    fi
  fi
  if ip link show "$node_link" >/dev/null 2>&1 && [ ! -f "$state/node/before/links" ]; then
    log "network interface $node_link exists but no testenv here owns it; remove it (ip link del $node_link)"
    return 1
  fi
}

# Records what node_stop must restore, then creates the node's interface (the API server binds to it, so
# it lives as long as the control plane: node_teardown_network removes it).
node_setup_network() {
  local before=$state/node/before s p
  mkdir -p "$before" "$node_run"
  echo "$state" >"$node_run/owner"
  if [ ! -f "$before/sysctls" ]; then
    for s in "${sysctls_touched[@]}"; do
      [ -e "/proc/sys/${s//.//}" ] && echo "$s=$(cat "/proc/sys/${s//.//}")"
    done >"$before/sysctls"
    for p in "${host_paths[@]}"; do [ -e "$p" ] && echo "$p"; done >"$before/paths"
    ls /var/lib/cni/results >"$before/cni-results" 2>/dev/null || true
    node_chains >"$before/chains"
    ls /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods -d 2>/dev/null >"$before/cgroups" || true
    ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 >"$before/links"
  fi
  ip link add "$node_link" type bridge
  ip addr add "$node_ip/32" dev "$node_link"
  ip link set "$node_link" up
  # Service traffic of this machine's processes (the API server calling a webhook) is DNATed by
  # kube-proxy; without kube-proxy's rules it must die here rather than follow the default route out.
  ip route add "$service_cidr" dev "$node_link"
}

node_teardown_network() {
  if ip link show "$node_link" >/dev/null 2>&1; then ip link del "$node_link" || return 1; fi
  rm -f "$node_run/owner"
  rmdir "$node_run" 2>/dev/null || true
}

# Every KUBE-* and CNI-* chain as "table chain" (the chains kube-proxy, the kubelet and CNI plugins make).
node_chains() {
  local cmd
  for cmd in iptables ip6tables; do
    command -v "$cmd-save" >/dev/null || continue
    "$cmd-save" 2>/dev/null | awk -v c="$cmd" '/^\*/ {t = substr($1, 2)} /^:(KUBE-|CNI-)/ {print c, t, substr($1, 2)}'
  done | sort
}

node_pki() {  # issue() from up.sh's make_pki
  # The kubelet's identity: the Node authorizer and NodeRestriction admit it for its own node only.
  issue kubelet "/O=system:nodes/CN=system:node:$node_name" "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  # kube-proxy's identity: the default ClusterRoleBinding system:node-proxier grants it what it reads.
  issue kube-proxy "/CN=system:kube-proxy" "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  # The API server's client identity toward the kubelet (logs, exec, port-forward).
  issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
}

node_kubeconfig() {  # name -> a kubeconfig with that client certificate
  local b64ca b64crt b64key
  b64ca=$(base64 -w0 <"$pki/ca.crt")
  b64crt=$(base64 -w0 <"$pki/$1.crt")
  b64key=$(base64 -w0 <"$pki/$1.key")
  cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster: {server: "https://$node_ip:$APISERVER_PORT", certificate-authority-data: $b64ca}
users:
- name: $1
  user: {client-certificate-data: $b64crt, client-key-data: $b64key}
contexts:
- name: testenv
  context: {cluster: testenv, user: $1}
current-context: testenv
EOF
}

# The sandbox image, packed from a static pause binary; cached by the hash of its recipe.
node_pause_image() {
  local here=$testenv_here/node key out tmp
  key=$(cat "$here/pause.c" "$here/image-tar.py" | sha256sum | cut -c1-12)
  out=${TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskjob-testenv}/images/pause-$key.tar
  if [ ! -f "$out" ]; then
    mkdir -p "$(dirname "$out")"
    tmp=$(mktemp -d)
    gcc -static -Os -o "$tmp/pause" "$here/pause.c"
    strip "$tmp/pause"
    python3 "$here/image-tar.py" --tag "$pause_image" --entrypoint /pause --file "$tmp/pause:/pause" "$tmp/pause.tar"
    mv "$tmp/pause.tar" "$out"
    rm -rf "$tmp"
  fi
  echo "$out"
}
pause_image=localhost/taskjob-testenv/pause:1

node_write_configs() {
  local n=$state/node
  mkdir -p "$n"/{containerd,kubelet,cni/net.d,cni/ipam,pod-logs,kube-proxy}
  # containerd 2.x config (version 3, still read by 2.4): private root, state and sockets; host configs,
  # NRI and /opt are not read; netns bind mounts live under its state dir, so node_clean finds them.
  cat >"$n/containerd/config.toml" <<EOF
version = 3
root = "$n/containerd/root"
state = "$node_run/containerd"
imports = []
[grpc]
  address = "$containerd_sock"
[ttrpc]
  address = "$containerd_sock.ttrpc"
[plugins.'io.containerd.internal.v1.opt']
  path = "$n/containerd/opt"
[plugins.'io.containerd.nri.v1.nri']
  disable = true
[plugins.'io.containerd.shim.v1.manager']
  socket_dir = "$node_run/s"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "$pause_image"
[plugins.'io.containerd.cri.v1.runtime']
  # root here lacks CAP_SYS_RESOURCE: setting the sandbox's oom_score_adj to -998 fails in runc.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  Root = "$node_run/runc"
  SystemdCgroup = false
[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ["/usr/lib/cni"]
  conf_dir = "$n/cni/net.d"
EOF
  # Bridge + host-local (Debian's containernetworking-plugins); firewall accepts pod traffic in FORWARD
  # even when a Docker engine has set its policy to DROP. No masquerade: pods talk only to this machine.
  cat >"$n/cni/net.d/10-taskjob-testenv.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$cni_network",
  "plugins": [
    {"type": "bridge", "bridge": "$cni_bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$n/cni/ipam", "ranges": [[{"subnet": "$pod_cidr"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "firewall", "backend": "iptables"}
  ]
}
EOF
  node_kubeconfig kubelet >"$n/kubelet/kubeconfig"
  node_kubeconfig kube-proxy >"$n/kube-proxy/kubeconfig"
  # Eviction thresholds low and image GC off: a nearly full CI disk must not evict test pods or delete
  # the images loaded onto the node (nothing could pull them back).
  cat >"$n/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$containerd_sock
# The test machines have cgroup v1 hierarchies, which Kubernetes 1.35 refuses unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
# The kubelet's own iptables chains are not needed (kube-proxy does Services) and would be more to undo.
makeIPTablesUtilChains: false
# Lowering oom_score_adj needs CAP_SYS_RESOURCE, which root lacks here.
oomScoreAdj: 0
podLogsDir: "$n/pod-logs"
volumePluginDir: "$n/kubelet/volume-plugins"
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
serializeImagePulls: false
EOF
  cat >"$n/kube-proxy/config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: "$n/kube-proxy/kubeconfig"}
hostnameOverride: $node_name
bindAddress: $node_ip
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
clusterCIDR: $pod_cidr
nodePortAddresses: ["$node_ip/32"]
oomScoreAdj: 0
# 0: leave the machine's conntrack sysctls alone; no route_localnet (localhost NodePorts).
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
EOF
}

crictl_() { "$state/bin/crictl" --runtime-endpoint "unix://$containerd_sock" --timeout 30s "$@"; }
ctr_() { "$state/bin/ctr" --address "$containerd_sock" --namespace k8s.io "$@"; }

node_ready() {
  kubectl_ get node "$node_name" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}

# kube-proxy has programmed the `kubernetes` Service: pods can reach the API server.
node_proxy_synced() {
  curl -fsS "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz" >/dev/null &&
    iptables -t nat -S KUBE-SERVICES 2>/dev/null | grep -q 'default/kubernetes:https'
}

# Starts containerd, the kubelet and kube-proxy; returns once the node is Ready and Services work.
node_start() {
  local pause_tar
  # A pod calling a Service whose endpoint is a pod on the same bridge: the reply must pass iptables to be
  # un-DNATed. Recorded by node_setup_network, restored by node_stop.
  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] && sysctl -qw net.bridge.bridge-nf-call-iptables=1
  node_write_configs
  pause_tar=$(node_pause_image)
  # Our own containerd-shim-runc-v2 first on PATH: a Docker engine's containerd 1.6 ships one too.
  start containerd env PATH="$state/bin:$PATH" "$state/bin/containerd" --config "$state/node/containerd/config.toml"
  wait_until containerd "containerd" ctr_ version
  ctr_ images import "$pause_tar" >/dev/null
  start kubelet "$state/bin/kubelet" --config="$state/node/kubelet/config.yaml" \
    --kubeconfig="$state/node/kubelet/kubeconfig" --root-dir="$state/node/kubelet" \
    --cert-dir="$state/node/kubelet/pki" --hostname-override="$node_name" --node-ip="$node_ip" \
    --node-labels="$node_label=real"
  start kube-proxy "$state/bin/kube-proxy" --config="$state/node/kube-proxy/config.yaml"
  wait_until kubelet "node $node_name Ready" node_ready
  wait_until kube-proxy "kube-proxy to program the kubernetes Service" node_proxy_synced
}

# Kills what is left of pods: every process in the kubelet's cgroups and every shim of our containerd.
node_kill_leftovers() {
  local pids
  pids=$(cat /sys/fs/cgroup/*/kubepods/cgroup.procs /sys/fs/cgroup/*/kubepods/*/cgroup.procs \
    /sys/fs/cgroup/*/kubepods/*/*/cgroup.procs /sys/fs/cgroup/*/kubepods/*/*/*/cgroup.procs \
    /sys/fs/cgroup/kubepods/cgroup.procs 2>/dev/null | sort -u || true)
  # shellcheck disable=SC2009  # pgrep -f would also match this shell's own command line
  pids+=" $(ps -eo pid=,args= | grep -F -- "-address $containerd_sock" | grep -v grep | awk '{print $1}' || true)"
  for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
}

node_umount_all() {  # every mount under our dirs, deepest first
  local mp _
  # A few rounds: unmounting a parent may reveal nothing new, but a busy mount may need a second try.
  for _ in 1 2 3; do
    mapfile -t mps < <(awk '{print $5}' /proc/self/mountinfo |
      grep -E "^($state/node|$node_run)(/|$)" | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
    [ ${#mps[@]} -eq 0 ] && return 0
    for mp in "${mps[@]}"; do umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true; done
  done
}

node_restore_iptables() {
  local before=$state/node/before/chains cmd table chain
  if [ -x "$state/bin/kube-proxy" ]; then
    "$state/bin/kube-proxy" --cleanup --config="$state/node/kube-proxy/config.yaml" >/dev/null 2>&1 || true
  fi
  # What kube-proxy --cleanup leaves, and the CNI plugins' chains: unhook, flush, then delete each chain
  # that was not there before we started.
  local ours
  ours=$(comm -13 "$before" <(node_chains))
  [ -n "$ours" ] || return 0
  while read -r cmd table chain; do
    "$cmd" -t "$table" -S 2>/dev/null | grep -E -- "-j $chain( |$)" | sed 's/^-A /-D /' |
      while read -r rule; do eval "$cmd -t $table $rule" 2>/dev/null || true; done
    "$cmd" -t "$table" -F "$chain" 2>/dev/null || true
  done <<<"$ours"
  while read -r cmd table chain; do "$cmd" -t "$table" -X "$chain" 2>/dev/null || true; done <<<"$ours"
}

node_restore_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$d" ] || continue
    grep -qxF "$d" "$state/node/before/cgroups" 2>/dev/null && continue
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

node_restore_paths() {
  local p
  # Container log symlinks the kubelet made to our pod logs, and libcni's cache of our network and of
  # our pods' loopback (left when containerd died before it could run CNI DEL).
  find /var/log/containers -maxdepth 1 -type l -lname "$state/*" -delete 2>/dev/null || true
  rm -rf /var/lib/cni/results/"$cni_network"-* 2>/dev/null || true
  for p in /var/lib/cni/results/cni-loopback-*; do
    [ -e "$p" ] || continue
    grep -qxF "${p##*/}" "$state/node/before/cni-results" 2>/dev/null || rm -f "$p"
  done
  # Deepest first; a directory that was there before, or holds files that are not ours, stays.
  for p in $(printf '%s\n' "${host_paths[@]}" | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-); do
    [ -d "$p" ] || continue
    grep -qxF "$p" "$state/node/before/paths" 2>/dev/null && continue
    rmdir "$p" 2>/dev/null || log "left $p in place: it holds files that are not ours"
  done
}

node_restore_sysctls() {
  local key value rc=0
  [ -f "$state/node/before/sysctls" ] || return 0
  while IFS='=' read -r key value; do
    [ "$(cat "/proc/sys/${key//.//}" 2>/dev/null)" = "$value" ] || sysctl -qw "$key=$value" || rc=1
  done <"$state/node/before/sysctls"
  return $rc
}

# Stops the node and undoes everything it changed on this machine but its interface (the API server is
# bound to it; node_teardown_network removes it). Safe to run more than once, and after a failed or
# half-finished start. The kubelet stops first so that it restarts nothing.
node_stop() {
  local rc=0 name
  [ -d "$state/node" ] || return 0
  stop_component kube-proxy || rc=1
  stop_component kubelet || rc=1
  if live_pid containerd >/dev/null; then
    # Removing the pod sandboxes runs CNI DEL (veths, IPs, firewall rules) and stops their containers.
    crictl_ rmp --all --force >/dev/null 2>&1 || log "crictl rmp failed; killing the pods' processes"
  fi
  node_kill_leftovers
  stop_component containerd || rc=1
  node_kill_leftovers
  node_umount_all
  ip link show "$cni_bridge" >/dev/null 2>&1 && {
    for name in $(ip -o link show master "$cni_bridge" | awk -F': ' '{print $2}' | cut -d@ -f1); do
      ip link del "$name" 2>/dev/null || true
    done
    ip link del "$cni_bridge" || rc=1
  }
  node_restore_iptables
  node_restore_cgroups
  node_restore_paths
  node_restore_sysctls || rc=1
  rm -rf "$node_run/containerd" "$node_run/s" "$node_run/runc"
  rm -f "$containerd_sock" "$containerd_sock.ttrpc"
  return $rc
}
