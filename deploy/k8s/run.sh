#!/usr/bin/env bash
# Runs a sharded Tapedeck run on Kubernetes: the Indexed Job of shards, then (once it is
# complete) the merge Job; prints the merge's output. Kubernetes has no dependency between
# Jobs, so this waits with `kubectl wait`.
#
#   deploy/k8s/run.sh [NAMESPACE]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ns=(--namespace "${1:-default}")
kubectl "${ns[@]}" apply -f "$here/shards-job.yaml"
kubectl "${ns[@]}" wait --for=condition=complete --timeout=24h job/tapedeck-shards
kubectl "${ns[@]}" apply -f "$here/merge-job.yaml"
kubectl "${ns[@]}" wait --for=condition=complete --timeout=1h job/tapedeck-merge || true
kubectl "${ns[@]}" logs job/tapedeck-merge
