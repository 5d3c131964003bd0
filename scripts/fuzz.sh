#!/usr/bin/env bash
# Run every fuzz target for SECONDS (default 20) and fail on a crash, a panic, a timeout or an
# allocation over the limits. Seeds come from files real etcd wrote (examples/k8s-small.db, made
# by examples/make-example.sh), the test fixtures, and small inputs made here; committed
# regression inputs (fuzz/regressions/TARGET/) are replayed first. Findings are left in
# fuzz/artifacts/TARGET/: commit each as a regression input and add a unit test.
#   bash scripts/fuzz.sh          20 s per target (what CI runs)
#   bash scripts/fuzz.sh 3600     an hour per target (record it in docs/reliability.md)
#   bash scripts/fuzz.sh 600 keyspace bolt_mutate   only these targets
set -euo pipefail
secs=${1:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
cd "$root/fuzz"
# Stable toolchain: libFuzzer's coverage instrumentation without a sanitizer (our code forbids
# unsafe; the limits below catch runaway memory).
cargo fuzz build -O -s none

seeds="$root/target/fuzz-seeds"
rm -rf "$seeds"
targets=(bolt_status bolt_mutate keyspace k8s_decode manifest sidecar decode_stream initial_cluster s3_xml pki_scan)
for t in "${targets[@]}"; do mkdir -p "$seeds/$t"; done
cp "$root/examples/k8s-small.db" "$seeds/bolt_status/"
cp "$root/examples/k8s-small.db" "$seeds/keyspace/"
cp "$root"/tests/fixtures/manifests/* "$seeds/manifest/"
head -c 4096 "$root/examples/k8s-small.db" | zstd -q -c > "$seeds/decode_stream/small.zst"
printf 'age-encryption.org/v1\n-> X25519 AAAA\nBBBB\n--- CCCC\n' > "$seeds/decode_stream/age-header"
printf 'k8s\0\x0a\x0b\x0a\x02v1\x12\x03Pod\x12\x06\x0a\x04\x0a\x02p1' > "$seeds/k8s_decode/pod"
printf '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"n"}}' > "$seeds/k8s_decode/json"
printf 'k8s:enc:aescbc:v1:key1:\x01\x02' > "$seeds/k8s_decode/encrypted"
printf 'cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380,cp3=https://[fd00::3]:2380' > "$seeds/initial_cluster/three"
cat > "$seeds/sidecar/meta.json" <<'JSON'
{"format":"etcdops-snapshot/1","name":"etcd-m1-20261128T000000Z.db","created":"2026-11-28T00:00:00Z","db_sha256":"00","db_size":1,"object_sha256":"00","object_size":1,"revision":5,"etcd_version":"3.5.1","cluster_id":"1","member_id":"2","members":[{"id":"2","name":"m1","peer_urls":["https://127.0.0.1:2380"]}],"etcdops_version":"0.1.0"}
JSON
# bolt_mutate edits examples/k8s-small.db (built in): a few edit lists to start from.
printf '\x07\x00\x00\x00\x02\x00' > "$seeds/bolt_mutate/meta-root"
printf '\x01\x02\x00\x00\x05\x00\x03\x03\x00\x01\x07\x40' > "$seeds/bolt_mutate/count-elem"
cat > "$seeds/s3_xml/list.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>t</NextContinuationToken><Contents><Key>p/etcd-m1-20261128T000000Z.db</Key><Size>61472</Size></Contents></ListBucketResult>
XML
cat > "$seeds/s3_xml/uploads.xml" <<'XML'
<ListMultipartUploadsResult><Bucket>b</Bucket><IsTruncated>false</IsTruncated><NextKeyMarker>k</NextKeyMarker><NextUploadIdMarker>u</NextUploadIdMarker><Upload><Key>p/etcd-m1-20261128T000000Z.db</Key><UploadId>abc</UploadId><Initiated>2026-11-28T00:00:00.000Z</Initiated></Upload></ListMultipartUploadsResult>
XML
printf '<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>abc</UploadId></InitiateMultipartUploadResult>' > "$seeds/s3_xml/initiate.xml"
printf '<Error><Code>AccessDenied</Code><Message>no</Message></Error>' > "$seeds/s3_xml/error.xml"
# pki_scan: a certificate as PEM and DER, a key, and a kubeconfig embedding them.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=fuzz \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 1 \
  -keyout "$seeds/pki_scan/key.pem" -out "$seeds/pki_scan/cert.pem" 2>/dev/null
openssl x509 -in "$seeds/pki_scan/cert.pem" -outform DER -out "$seeds/pki_scan/cert.der"
cert64=$(base64 -w0 "$seeds/pki_scan/cert.pem")
key64=$(base64 -w0 "$seeds/pki_scan/key.pem")
cat > "$seeds/pki_scan/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: $cert64
    server: https://127.0.0.1:6443
  name: k
users:
- name: admin
  user:
    client-certificate-data: $cert64
    client-key-data: $key64
contexts:
- context: {cluster: k, user: admin}
  name: admin@k
current-context: admin@k
YAML

failed=()
run=("${targets[@]}")
[ $# -gt 1 ] && run=("${@:2}")
for t in "${run[@]}"; do
  corpus=("$seeds/$t")
  [ -d "regressions/$t" ] && corpus+=("regressions/$t")
  echo "fuzz: $t for ${secs}s"
  if ! cargo fuzz run -O -s none "$t" "${corpus[@]}" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=512 \
      -max_len=65536 -print_final_stats=1 2>"$root/target/fuzz-$t.log"; then
    failed+=("$t")
    tail -30 "$root/target/fuzz-$t.log"
  else
    { grep -E '^stat::number_of_executed_units' "$root/target/fuzz-$t.log" || true; } |
      sed "s/^/fuzz: $t: /"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
