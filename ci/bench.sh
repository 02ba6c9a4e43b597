#!/usr/bin/env bash
# The extractor's benchmark (services/extractor/BENCH.md): builds the release profile as
# shipped, installs the baseline's one dependency, and runs intraday-extractor-bench with the
# original's Python path beside it. Arguments go to the benchmark, e.g.
#
#   ci/bench.sh --records-1k 100000 --records-8k 20000
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/tools.sh
intraday_bench_tools
# pyspark, for the rows that run the Spark application in local mode.
intraday_spark_tools
command -v taskset >/dev/null || { echo "bench: taskset is missing (Debian: apt-get install util-linux)" >&2; exit 1; }
# The stand-in `hbase` too, for the range-scan rows.
cargo build --release --locked -p intraday-extractor -p intraday-testkit --bins
exec "${CARGO_TARGET_DIR:-target}/release/intraday-extractor-bench" \
  --python "$INTRADAY_TOOLS_DIR/bin/python" --spark-submit "$INTRADAY_TOOLS_DIR/bin/spark-submit" "$@"
