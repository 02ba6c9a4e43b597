#!/usr/bin/env bash
# Set-up: installs the Python tools (moto server, cfn-lint) into their own virtualenv and
# builds the workspace, so the test command and the local pipeline start at once.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "setup: cargo is missing; install Rust from https://rustup.rs" >&2; exit 1; }
command -v python3 >/dev/null || { echo "setup: python3 is missing; install Python 3.9 or newer" >&2; exit 1; }
source ci/tools.sh
cargo build --workspace --all-targets
echo "setup: done. Run the tests with ci/test.sh" >&2
