#!/usr/bin/env bash
# Regenerates examples/k8s-small.db: a small snapshot written by real etcd 3.5.1, holding a few
# hundred Kubernetes-shaped keys (/registry/<resource>/<namespace>/<name>), with updates,
# deletes, a lease and a compaction, saved with etcdctl. Needs scripts/test-deps.sh first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.cache/etcd-3.5.1"
[ -x "$bin/etcd" ] || { echo "etcd 3.5.1 missing: run bash scripts/test-deps.sh" >&2; exit 2; }
work=$(mktemp -d)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cport=$(port); pport=$(port)
"$bin/etcd" --name example --data-dir "$work/data" \
  --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
  --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
  --initial-cluster "example=http://127.0.0.1:$pport" --logger zap --log-outputs "$work/etcd.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
ctl() { "$bin/etcdctl" --endpoints "127.0.0.1:$cport" "$@"; }
for _ in $(seq 50); do ctl endpoint health >/dev/null 2>&1 && break; sleep 0.2; done

# One etcdctl txn per batch keeps this fast; each put is a quoted txn line.
pad=$(printf 'x%.0s' $(seq 400))
{
  for ns in default kube-system monitoring; do
    for i in $(seq 1 30); do
      echo "put /registry/pods/$ns/app-$i '{\"kind\":\"Pod\",\"metadata\":{\"name\":\"app-$i\",\"namespace\":\"$ns\"},\"spec\":\"$pad\"}'"
      echo "put /registry/configmaps/$ns/cm-$i '{\"kind\":\"ConfigMap\",\"data\":{\"k\":\"$i\"}}'"
    done
    for i in $(seq 1 20); do
      echo "put /registry/services/specs/$ns/svc-$i '{\"kind\":\"Service\",\"metadata\":{\"name\":\"svc-$i\"}}'"
      echo "put /registry/secrets/$ns/token-$i '{\"kind\":\"Secret\",\"data\":\"$pad\"}'"
    done
  done
} | split -l 100 - "$work/batch."
for f in "$work"/batch.*; do
  { echo; cat "$f"; echo; echo; } | ctl txn >/dev/null
done
for i in $(seq 1 10); do ctl put "/registry/leases/kube-node-lease/node-$i" "{\"renew\":$i}" >/dev/null; done
for i in $(seq 1 10); do ctl put "/registry/leases/kube-node-lease/node-$i" "{\"renew\":$((i + 100))}" >/dev/null; done
lease=$(ctl lease grant 3600 | awk '{print $2}')
ctl put /registry/events/default/app-1.event '{"kind":"Event"}' --lease="$lease" >/dev/null
for i in $(seq 1 5); do ctl del "/registry/pods/default/app-$i" >/dev/null; done
rev=$(ctl endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
ctl compact $((rev - 5)) >/dev/null
ctl snapshot save "$root/examples/k8s-small.db.part" >/dev/null 2>&1
chmod 0644 "$root/examples/k8s-small.db.part"
mv "$root/examples/k8s-small.db.part" "$root/examples/k8s-small.db"
"$bin/etcdutl" snapshot status -w table "$root/examples/k8s-small.db"
