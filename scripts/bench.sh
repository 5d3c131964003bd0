#!/usr/bin/env bash
# Build the release binaries and run the benchmark suite (see scripts/bench.py for options):
#   bash scripts/bench.sh            full run, rewrites docs/performance.md
#   bash scripts/bench.sh --with-4g  the same, with 4 GB rows in the scaling tables (what docs/performance.md holds)
#   bash scripts/bench.sh --quick    64 MB, one run each (what CI runs)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh >/dev/null
cargo build --release --locked --bin etcdops --example bench_fill
exec python3 scripts/bench.py "$@"
