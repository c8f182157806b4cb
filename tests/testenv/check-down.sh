#!/usr/bin/env bash
# Proves that `make testenv` + `make testenv-down` leave the machine as it was, the whole cycle: snapshots
# the machine (node/machine_state.py), starts a private testenv with the real node, runs a pod behind a
# Service (veth, netns, mounts, cgroups, iptables rules, the kubelet's sysctls), stops it with down.sh,
# snapshots again and compares. Exits 1, printing the difference, when anything is left or lost.
#
# Needs a machine where no other testenv's real node runs (one fits on a machine), so it is not part of
# `make test`, which runs with the testenv up; there tests/cluster/test_real_node_cleanup.py proves the
# node's part on the running testenv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/taskjob-check-down.XXXXXX")
export TESTENV_DIR=$work/testenv TESTENV_REAL_NODE=1
kubectl() { "$TESTENV_DIR/bin/kubectl" --kubeconfig "$TESTENV_DIR/kubeconfig" "$@"; }

python3 "$here/node/machine_state.py" "$TESTENV_DIR" >"$work/before.json"
trap '"$here/down.sh" || true' EXIT
"$here/up.sh"
"$here/load-image.sh" "$("$here/node/probe-image.sh")"
image=localhost/taskjob-testenv/probe:1
kubectl run server --image=$image --labels=app=server --restart=Never -- serve 8080 >/dev/null
kubectl expose pod server --port=80 --target-port=8080 >/dev/null
kubectl wait --for=condition=Ready pod/server --timeout=90s >/dev/null
ip=$(kubectl get service server -o jsonpath='{.spec.clusterIP}')
# kube-proxy programs the Service a moment after the pod is ready: poll from this machine first.
deadline=$((SECONDS + 60))
until curl -fsS -m 2 "http://$ip/" >/dev/null 2>&1; do
  [ $SECONDS -lt $deadline ] || { echo "[check-down] Service $ip never answered" >&2; exit 1; }
  sleep 0.5
done
kubectl run client --image=$image --restart=Never -- get "http://$ip/" >/dev/null
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded pod/client --timeout=90s >/dev/null ||
  { kubectl get pod client -o yaml >&2; exit 1; }
echo "[check-down] a pod reached a pod through Service $ip: $(kubectl logs client)"
"$here/down.sh"
trap - EXIT
python3 "$here/node/machine_state.py" "$TESTENV_DIR" >"$work/after.json"
python3 - "$work/before.json" "$work/after.json" <<'PY'
import json
import sys

before, after = (json.load(open(p)) for p in sys.argv[1:])
diff = {k: {"left": sorted(set(after[k]) - set(before[k])), "lost": sorted(set(before[k]) - set(after[k]))} for k in before}
diff = {k: v for k, v in diff.items() if v["left"] or v["lost"]}
if diff:
    print("[check-down] the machine is not as it was:", json.dumps(diff, indent=1))
    sys.exit(1)
print("[check-down] the machine is as it was: " + ", ".join(f"{len(v)} {k}" for k, v in before.items()))
PY
rm -rf "$work"
