#!/usr/bin/env bash
# Builds what a deploy ships, into dist/, and checks each file against where it runs:
#
#   dist/lambda/<service>.zip   a `bootstrap` for Lambda's provided.al2023 runtime
#   dist/emr/intraday-extractor the EMR step, for the OS of infra/emr/cluster.json's release
#   dist/emr/intraday-extractor.sha256, dist/emr/bootstrap.sh (the cluster's bootstrap action)
#   dist/emr/intraday_spark.py  the Spark driver (engine spark/auto), and its .sha256
#   dist/bin/intradayctl        the operator's CLI
#   dist/SHA256SUMS
#
#   ci/package.sh [--arch x86_64|arm64] [--profile release|package-check]
#
# Binaries are linked with cargo-zigbuild against the glibc of the OS they run on, and then
# checked: ELF machine = the deployed architecture, newest GLIBC symbol version <= that OS's
# glibc. Deploy with the stack's LambdaArchitecture equal to --arch (x86_64 by default).
set -euo pipefail
cd "$(dirname "$0")/.."

arch="x86_64" profile="release"
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="${2:-}"; shift 2 || { echo "package: --arch needs x86_64 or arm64" >&2; exit 2; } ;;
    --profile) profile="${2:-}"; shift 2 || { echo "package: --profile needs a cargo profile" >&2; exit 2; } ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package: unknown argument \`$1\`; see ci/package.sh --help" >&2; exit 2 ;;
  esac
done

# Lambda's architectures and their ELF machines:
# https://docs.aws.amazon.com/lambda/latest/dg/foundation-arch.html
case "$arch" in
  x86_64) triple="x86_64-unknown-linux-gnu"; elf_machine="Advanced Micro Devices X86-64" ;;
  arm64) triple="aarch64-unknown-linux-gnu"; elf_machine="AArch64" ;;
  *) echo "package: --arch \`$arch\` is not x86_64 or arm64 (the stack's LambdaArchitecture values)" >&2; exit 2 ;;
esac
command -v cargo >/dev/null || { echo "package: cargo is missing; install Rust from https://rustup.rs" >&2; exit 1; }
if [ ! -d "$(rustc --print sysroot)/lib/rustlib/$triple/lib" ]; then
  echo "package: cannot build for $arch: the Rust standard library for $triple is not installed here" >&2
  echo "         (rustup target add $triple, where rustup can download it). This machine builds" >&2
  echo "         $(rustc -vV | sed -n 's/^host: //p') only: package with --arch x86_64 and deploy with LambdaArchitecture=x86_64." >&2
  exit 1
fi
for tool in zip readelf objdump sha256sum python3; do
  command -v "$tool" >/dev/null || { echo "package: $tool is missing (Debian: apt-get install zip binutils coreutils python3)" >&2; exit 1; }
done
# Checked before the build: a dist/ without the driver could not run a Spark step.
spark_driver="services/extractor/spark/intraday_spark.py"
[ -f "$spark_driver" ] || { echo "package: $spark_driver is missing; the EMR parameters' spark_driver_install_from ships it" >&2; exit 1; }

# provided.al2023 is Amazon Linux 2023, whose glibc is 2.34:
# https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html
# https://docs.aws.amazon.com/linux/al2023/ug/glibc-gcc-and-binutils.html
lambda_glibc="2.34"
# EMR 7.x runs on Amazon Linux 2023 (glibc 2.34), 5.x and 6.x on Amazon Linux 2 (glibc 2.26):
# https://docs.aws.amazon.com/emr/latest/ManagementGuide/emr-default-ami.html
release=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["release_label"])' infra/emr/cluster.json)
case "$release" in
  emr-7.*) emr_os="Amazon Linux 2023"; emr_glibc="2.34" ;;
  emr-6.*|emr-5.*) emr_os="Amazon Linux 2"; emr_glibc="2.26" ;;
  *) echo "package: infra/emr/cluster.json names $release; only emr-5.x to emr-7.x are known here (their OS decides the glibc the extractor may need)" >&2; exit 1 ;;
esac

source ci/tools.sh
intraday_packaging_tools
target_dir="${CARGO_TARGET_DIR:-target}/$triple/$([ "$profile" = dev ] && echo debug || echo "$profile")"

# One build per glibc: the Lambdas and the CLI for AL2023, the extractor for its release's OS.
# When both are the same, one cargo invocation builds all, so dependencies are compiled once
# with one feature set.
build() {
  local glibc="$1"; shift
  echo "package: building $* for $triple with glibc $glibc ($profile profile)" >&2
  cargo zigbuild --locked --profile "$profile" --target "$triple.$glibc" "$@"
}
services=(-p intraday-scheduler -p intraday-launcher -p intraday-monitor
  -p intraday-table-builder -p intraday-reaper -p intradayctl)
if [ "$emr_glibc" = "$lambda_glibc" ]; then
  build "$lambda_glibc" "${services[@]}" -p intraday-extractor
else
  build "$lambda_glibc" "${services[@]}"
  build "$emr_glibc" -p intraday-extractor
fi
lambda_out="$target_dir"

newest_glibc() {
  objdump -T "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1
}

# check BINARY MAX_GLIBC WHERE: refuses a binary its target could not load.
check() {
  local binary="$1" max="$2" where="$3" machine needs
  machine=$(readelf -h "$binary" | sed -n 's/^ *Machine: *//p')
  if [ "$machine" != "$elf_machine" ]; then
    echo "package: $binary is built for \`$machine\`, not $arch ($elf_machine); $where would refuse to run it" >&2
    exit 1
  fi
  needs=$(newest_glibc "$binary")
  if [ -n "$needs" ] && [ "$(printf '%s\n%s\n' "$needs" "$max" | sort -V | tail -n 1)" != "$max" ]; then
    echo "package: $binary needs glibc $needs; $where has $max, so it could not load there" >&2
    exit 1
  fi
  echo "package: $(basename "$binary"): $arch, needs glibc ${needs:-none} (<= $max on $where)" >&2
}

rm -rf dist && mkdir -p dist/lambda dist/emr dist/bin
for service in scheduler launcher monitor table-builder reaper; do
  check "$lambda_out/$service" "$lambda_glibc" "Lambda provided.al2023"
  work=$(mktemp -d)
  install -m 0755 "$lambda_out/$service" "$work/bootstrap"
  # -X: no extra file attributes, so the same binary gives the same zip.
  (cd "$work" && zip -q -X -9 "$OLDPWD/dist/lambda/$service.zip" bootstrap)
  rm -rf "$work"
done
check "$target_dir/intraday-extractor" "$emr_glibc" "$release ($emr_os)"
# The extractor's allocator settings come from .cargo/config.toml when jemalloc is built; a
# build that missed them would hold freed memory for 10 s and could exceed its memory budget.
allocator_settings=$(sed -n 's/^JEMALLOC_SYS_WITH_MALLOC_CONF = "\(.*\)"$/\1/p' .cargo/config.toml)
if [ -z "$allocator_settings" ] || ! grep -qaF "$allocator_settings" "$target_dir/intraday-extractor"; then
  echo "package: intraday-extractor was built without .cargo/config.toml's jemalloc settings (\`${allocator_settings:-none found}\`); rebuild it from the repository's root" >&2
  exit 1
fi
# jemalloc is C's malloc too (Cargo.toml's tikv-jemallocator feature), so zstd's workspaces
# are kept and reused; with glibc's they were faulted in again for every row group.
if [ -z "$(readelf --dyn-syms -W "$target_dir/intraday-extractor" | awk '$8 == "malloc" && $7 != "UND"')" ]; then
  echo "package: intraday-extractor does not define malloc: it was built without tikv-jemallocator's unprefixed_malloc_on_supported_platforms (Cargo.toml); rebuild it from the repository's root" >&2
  exit 1
fi
install -m 0755 "$target_dir/intraday-extractor" dist/emr/intraday-extractor
install -m 0755 infra/emr/bootstrap.sh dist/emr/bootstrap.sh
install -m 0644 "$spark_driver" dist/emr/intraday_spark.py
check "$lambda_out/intradayctl" "$lambda_glibc" "Amazon Linux 2023 and newer"
install -m 0755 "$lambda_out/intradayctl" dist/bin/intradayctl

(cd dist/emr && sha256sum intraday-extractor >intraday-extractor.sha256)
(cd dist/emr && sha256sum intraday_spark.py >intraday_spark.py.sha256)
(cd dist && find . -type f ! -name SHA256SUMS | sort | xargs sha256sum >SHA256SUMS)
echo "package: dist/ for $arch, Lambda zips for provided.al2023, the extractor for $release:" >&2
ls -l dist/lambda dist/emr dist/bin >&2
echo "package: extractor SHA-256 (the EMR parameters' extractor_sha256): $(cut -d' ' -f1 dist/emr/intraday-extractor.sha256)" >&2
echo "package: Spark driver SHA-256 (the EMR parameters' spark_driver_sha256): $(cut -d' ' -f1 dist/emr/intraday_spark.py.sha256)" >&2
