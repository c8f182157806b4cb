#!/usr/bin/env bash
# Runs the operator against the testenv, applies examples/diamond.yaml and watches it finish.
set -euo pipefail
cd "$(dirname "$0")/../.."
export KUBECONFIG=$PWD/.testenv/kubeconfig
kubectl=.testenv/bin/kubectl
$kubectl apply --server-side -f crds/ >/dev/null
$kubectl wait --for=condition=Established crd/taskjobs.taskjob.dev --timeout=60s >/dev/null
ns=taskjob-demo
$kubectl create namespace $ns --dry-run=client -o yaml | $kubectl apply -f - >/dev/null
$kubectl -n $ns delete taskjob diamond --ignore-not-found >/dev/null
.venv/bin/taskjob operator --namespace $ns --health-port 0 --metrics-port 0 --log-level warning &
op=$!
trap 'kill $op 2>/dev/null; wait $op 2>/dev/null || true' EXIT
$kubectl -n $ns apply -f examples/diamond.yaml
.venv/bin/taskjob watch diamond -n $ns
$kubectl -n $ns get taskjobs -o wide
$kubectl -n $ns get jobs -l taskjob.dev/taskjob=diamond
