#!/usr/bin/env bash
# Builds each service as a Lambda zip (a `bootstrap` binary for provided.al2023) and the
# extractor for EMR, into dist/, and checks that no binary needs a glibc newer than 2.34
# (Amazon Linux 2023). Upload the zips to the stack's CodeBucket under CodeKeyPrefix.
#
# It builds for this machine's architecture; deploy with LambdaArchitecture matching it
# (x86_64 here unless built on an arm64 host).
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_GLIBC="2.34"
command -v zip >/dev/null || { echo "package: zip is missing (Debian: apt-get install zip)" >&2; exit 1; }
command -v objdump >/dev/null || { echo "package: objdump is missing (Debian: apt-get install binutils)" >&2; exit 1; }

cargo build --release --locked \
  -p intraday-scheduler -p intraday-launcher -p intraday-monitor \
  -p intraday-table-builder -p intraday-reaper -p intraday-extractor -p intradayctl
target="${CARGO_TARGET_DIR:-target}/release"
rm -rf dist && mkdir -p dist

newest_glibc() {
  objdump -T "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1
}

check() {
  local binary="$1" needs
  needs=$(newest_glibc "$binary")
  if [ -n "$needs" ] && [ "$(printf '%s\n%s\n' "$needs" "$MAX_GLIBC" | sort -V | tail -n 1)" != "$MAX_GLIBC" ]; then
    echo "package: $binary needs glibc $needs; Amazon Linux 2023 has $MAX_GLIBC. Build on an older distribution or with cargo-zigbuild." >&2
    exit 1
  fi
  echo "package: $(basename "$binary") needs glibc ${needs:-none} (<= $MAX_GLIBC)" >&2
}

for service in scheduler launcher monitor table-builder reaper; do
  check "$target/$service"
  work=$(mktemp -d)
  cp "$target/$service" "$work/bootstrap"
  (cd "$work" && zip -q -9 "$OLDPWD/dist/$service.zip" bootstrap)
  rm -rf "$work"
done
for binary in intraday-extractor intradayctl; do
  check "$target/$binary"
  cp "$target/$binary" dist/
done
ls -l dist >&2
