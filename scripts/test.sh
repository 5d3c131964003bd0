#!/usr/bin/env bash
# The one test command: install the test dependencies (idempotent), then run every test.
# README and .ci/run call exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
cargo test --locked --lib --bins --tests
