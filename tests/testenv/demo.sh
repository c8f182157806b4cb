#!/usr/bin/env bash
# Runs the operator against the testenv, applies examples/diamond.yaml and watches it finish.
set -euo pipefail
cd "$(dirname "$0")/../.."
export KUBECONFIG=$PWD/.testenv/kubeconfig
kubectl=.testenv/bin/kubectl
$kubectl apply --server-side -f crds/ >/dev/null
$kubectl wait --for=condition=Established crd/taskjobs.taskjob.dev --timeout=60s >/dev/null
ns=taskjob-demo
# With the real node, the demo's pods run real busybox containers once `make images` has put the image
# there; until then they run on kwok's nodes (the namespace annotations of tests/conftest.py's fixture).
annotations=()
if [ -f .testenv/node/enabled ] && ! .testenv/bin/crictl --runtime-endpoint unix:///run/taskjob-testenv/containerd.sock \
  inspecti docker.io/library/busybox:1.36 >/dev/null 2>&1; then
  echo "busybox:1.36 is not on the real node (make images puts it there): the demo's pods run on kwok's nodes"
  annotations=(scheduler.alpha.kubernetes.io/node-selector=type=kwok
    'scheduler.alpha.kubernetes.io/defaultTolerations=[{"key":"taskjob.dev/testenv-node","operator":"Equal","value":"kwok","effect":"NoSchedule"}]')
fi
$kubectl create namespace $ns --dry-run=client -o yaml | $kubectl apply -f - >/dev/null
if [ ${#annotations[@]} -gt 0 ]; then
  $kubectl annotate --overwrite namespace $ns "${annotations[@]}" >/dev/null
else  # a namespace left by an earlier demo run without the image
  $kubectl annotate namespace $ns scheduler.alpha.kubernetes.io/node-selector- \
    scheduler.alpha.kubernetes.io/defaultTolerations- >/dev/null 2>&1 || true
fi
$kubectl -n $ns delete taskjob diamond --ignore-not-found >/dev/null
.venv/bin/taskjob operator --namespace $ns --health-port 0 --metrics-port 0 --log-level warning &
op=$!
trap 'kill $op 2>/dev/null; wait $op 2>/dev/null || true' EXIT
$kubectl -n $ns apply -f examples/diamond.yaml
.venv/bin/taskjob watch diamond -n $ns
$kubectl -n $ns get taskjobs -o wide
$kubectl -n $ns get jobs -l taskjob.dev/taskjob=diamond
