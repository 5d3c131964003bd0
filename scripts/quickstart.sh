#!/usr/bin/env bash
# Build etcdops and run its main offline job on the bundled example snapshot (made by real
# etcd 3.5.1 with examples/make-example.sh). Needs only the build dependencies: protoc and the
# protobuf well-known types (Debian protobuf-compiler, libprotobuf-dev), installed if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v protoc >/dev/null 2>&1 || [ ! -f /usr/include/google/protobuf/descriptor.proto ]; then
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends protobuf-compiler libprotobuf-dev
fi
cargo build --release --locked
target/release/etcdops snapshot status examples/k8s-small.db
