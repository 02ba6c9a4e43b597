#!/usr/bin/env bash
# Lint: formatting, clippy with warnings as errors, and cfn-lint on the template.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/tools.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cfn-lint infra/template.yaml
echo "ci: lint clean" >&2
