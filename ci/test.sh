#!/usr/bin/env bash
# The test command: installs what the tests need, starts moto server on loopback, runs every
# test in the workspace against it, packages dist/ and tests the shipped files against it,
# and stops the server however the run ends.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/tools.sh
source ci/moto.sh

# Nothing may reach beyond loopback, and no stray credentials or profile may be picked up.
export AWS_EC2_METADATA_DISABLED=true
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=eu-west-2
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_SESSION_TOKEN

echo "ci: cfn-lint infra/template.yaml" >&2
cfn-lint infra/template.yaml

intraday_start_moto
# The stand-in `hbase` command (shared/testkit/src/hbase.rs), beside intradayctl: the local
# demo's EMR stand-in scans through it, and the extractor's range tests run it.
#
# Every cargo call here names the whole workspace and picks its targets with filters: cargo
# unifies features over the packages a call names, so a `-p one-crate` call compiles the SDK
# crates a second time with another feature set, which costs minutes and gigabytes.
cargo build --workspace --bin intraday-hbase-standin
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi

# Faults (docs/faults.md): the whole demo with 10% and 20% of requests faulted at random,
# and one demo per operation with that operation's first answer lost (or its connection
# dropped). Each test starts its own moto server (INTRADAY_TEST_ENDPOINT unset), as a fresh
# account: the shared one holds every earlier test's clusters, and moto serves one request at
# a time, so two servers keep both cores busy.
echo "ci: the pipeline under injected faults (moto_demo_faults.rs, moto_demo_lost_answers.rs)" >&2
if command -v cargo-nextest >/dev/null 2>&1; then
  env -u INTRADAY_TEST_ENDPOINT cargo nextest run --workspace --run-ignored only --no-fail-fast \
    --test-threads 2 \
    -E 'binary_id(intradayctl::moto_demo_faults) | binary_id(intradayctl::moto_demo_lost_answers)'
else
  env -u INTRADAY_TEST_ENDPOINT cargo test --workspace --test moto_demo_faults \
    --test moto_demo_lost_answers -- --ignored --test-threads 2
fi

# Hive's SerDes in a real engine: the tables and views as the table builder defines them,
# over the extractor's output, read by Spark with Hive support.
# And a run spread over Spark (spark/intraday_spark.py in local mode, a task per key range of
# the stand-in hbase's table).
echo "ci: Spark reads the tables through Hive's SerDes (services/extractor/tests/spark_hive.rs)" >&2
echo "ci: Spark runs the extraction a task per range (services/extractor/tests/hbase_ranges.rs)" >&2
echo "ci: the demo submits the launcher's Spark step to a local Spark (services/intradayctl/tests/spark_demo.rs)" >&2
intraday_spark_tools
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --run-ignored only --no-fail-fast \
    -E 'binary_id(intraday-extractor::spark_hive) | binary_id(intraday-extractor::hbase_ranges) | binary_id(intradayctl::spark_demo)'
else
  cargo test --workspace --test spark_hive --test hbase_ranges --test spark_demo -- --ignored
fi

# The shipped files, not the source: package as a deploy does (a lighter profile, the same
# targets and checks), then run the zips as Lambda runs them and the extractor as the step.
echo "ci: packaging dist/ (ci/package.sh --profile package-check) to test the shipped files" >&2
ci/package.sh --profile package-check
export INTRADAY_DIST_DIR="$PWD/dist"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --run-ignored only --no-fail-fast \
    -E 'binary_id(intradayctl::packaged)'
else
  cargo test --workspace --test packaged -- --ignored
fi
