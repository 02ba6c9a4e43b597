#!/usr/bin/env bash
# Lint: formatting, clippy with warnings as errors, cfn-lint on the template and a check of
# its dashboard's body.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/tools.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cfn-lint infra/template.yaml
python ci/check_dashboard.py
echo "ci: lint clean" >&2
