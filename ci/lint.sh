#!/usr/bin/env bash
# Lint: formatting, clippy with warnings as errors, cfn-lint and checkov on the template and
# a check of its dashboard's body.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/tools.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cfn-lint infra/template.yaml
python ci/check_dashboard.py
# Every failed check fails lint; an accepted exception is a skip, with its reason, in the
# resource's Metadata (checkov: skip: - id, comment). --skip-download: no calls to the
# vendor's platform, only the checks shipped in the pinned version.
intraday_checkov_tools
"$INTRADAY_CHECKOV_DIR/bin/checkov" --file infra/template.yaml --framework cloudformation \
  --compact --quiet --skip-download
echo "ci: lint clean" >&2
