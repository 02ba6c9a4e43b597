# Sourced by the ci/ scripts: makes the Python tools the tests and lint need available, in a
# virtualenv of their own with pinned versions, and puts it first on PATH.
#
# moto is pinned at 5.2.5: 5.2.1 answers CompleteMultipartUpload with the wrong XML root
# element, which the Rust SDK (rightly) rejects (getmoto/moto#10055).

MOTO_VERSION="5.2.5"
CFN_LINT_VERSION="1.58.0"
# The AWS CLI runs infra/emr/bootstrap.sh's tests against moto, as EMR's nodes run it.
AWSCLI_VERSION="1.46.3"
INTRADAY_TOOLS_DIR="${INTRADAY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/intraday/tools}"

# The extractor's allocator, jemalloc, is built from its C sources with configure and make.
for tool in cc make; do
  command -v "$tool" >/dev/null || {
    echo "ci: $tool is missing; the extractor's allocator (jemalloc) is built from source (Debian: apt-get install gcc make)" >&2
    exit 1
  }
done

intraday_tools_ready() {
  [ -x "$INTRADAY_TOOLS_DIR/bin/moto_server" ] && [ -x "$INTRADAY_TOOLS_DIR/bin/cfn-lint" ] &&
    [ -x "$INTRADAY_TOOLS_DIR/bin/aws" ] &&
    "$INTRADAY_TOOLS_DIR/bin/python" - "$MOTO_VERSION" "$CFN_LINT_VERSION" "$AWSCLI_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
wanted = {"moto": sys.argv[1], "cfn-lint": sys.argv[2], "awscli": sys.argv[3]}
sys.exit(0 if all(version(name) == v for name, v in wanted.items()) else 1)
PY
}

if ! intraday_tools_ready; then
  echo "ci: installing moto[server]==$MOTO_VERSION, cfn-lint==$CFN_LINT_VERSION and awscli==$AWSCLI_VERSION into $INTRADAY_TOOLS_DIR" >&2
  python3 -m venv "$INTRADAY_TOOLS_DIR" || {
    echo "ci: python3 -m venv failed; install Python 3's venv module (Debian: apt-get install python3-venv)" >&2
    exit 1
  }
  "$INTRADAY_TOOLS_DIR/bin/pip" install --quiet --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" "cfn-lint==$CFN_LINT_VERSION" "awscli==$AWSCLI_VERSION" || {
    echo "ci: pip could not install the test tools; check access to PyPI" >&2
    exit 1
  }
fi
export PATH="$INTRADAY_TOOLS_DIR/bin:$PATH"

# Packaging tools, installed only by ci/package.sh: cargo-zigbuild links against the glibc
# version we name (the deployed OS's), with zig as the linker.
CARGO_ZIGBUILD_VERSION="0.24.1"
ZIGLANG_VERSION="0.15.2"

intraday_packaging_tools() {
  if ! "$INTRADAY_TOOLS_DIR/bin/python" - "$CARGO_ZIGBUILD_VERSION" "$ZIGLANG_VERSION" <<'PY' 2>/dev/null; then
import sys
from importlib.metadata import version
sys.exit(0 if version("cargo-zigbuild") == sys.argv[1] and version("ziglang") == sys.argv[2] else 1)
PY
    echo "ci: installing cargo-zigbuild==$CARGO_ZIGBUILD_VERSION and ziglang==$ZIGLANG_VERSION into $INTRADAY_TOOLS_DIR" >&2
    "$INTRADAY_TOOLS_DIR/bin/pip" install --quiet --disable-pip-version-check \
      "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION" "ziglang==$ZIGLANG_VERSION" || {
      echo "ci: pip could not install the packaging tools; check access to PyPI" >&2
      exit 1
    }
  fi
}

# Spark with Hive support, for the test that reads the tables through Hive's SerDes
# (services/extractor/tests/spark_hive.rs). Installed only by ci/test.sh: a few hundred MB.
PYSPARK_VERSION="4.3.0"

# intraday_tools_pinned PACKAGE VERSION: installs PACKAGE==VERSION into the tools virtualenv
# unless that version is already there.
intraday_tools_pinned() {
  if ! "$INTRADAY_TOOLS_DIR/bin/python" - "$1" "$2" <<'PY' 2>/dev/null; then
import sys
from importlib.metadata import version
sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
PY
    echo "ci: installing $1==$2 into $INTRADAY_TOOLS_DIR" >&2
    "$INTRADAY_TOOLS_DIR/bin/pip" install --quiet --disable-pip-version-check "$1==$2" || {
      echo "ci: pip could not install $1; check access to PyPI" >&2
      exit 1
    }
  fi
}

intraday_spark_tools() {
  intraday_tools_pinned pyspark "$PYSPARK_VERSION"
  command -v java >/dev/null || {
    echo "ci: Spark needs Java 17 (Debian: apt-get install openjdk-17-jre-headless)" >&2
    exit 1
  }
}

# checkov, for ci/lint.sh's policy checks of infra/template.yaml. It pins exact versions of
# many libraries (boto3 among them) that would fight moto's, so it has a virtualenv of its
# own and is not put on PATH: call "$INTRADAY_CHECKOV_DIR/bin/checkov".
CHECKOV_VERSION="3.3.30"
INTRADAY_CHECKOV_DIR="${INTRADAY_CHECKOV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/intraday/checkov}"

intraday_checkov_tools() {
  if ! "$INTRADAY_CHECKOV_DIR/bin/python" - "$CHECKOV_VERSION" <<'PY' 2>/dev/null; then
import sys
from importlib.metadata import version
sys.exit(0 if version("checkov") == sys.argv[1] else 1)
PY
    echo "ci: installing checkov==$CHECKOV_VERSION into $INTRADAY_CHECKOV_DIR" >&2
    python3 -m venv "$INTRADAY_CHECKOV_DIR" &&
      "$INTRADAY_CHECKOV_DIR/bin/pip" install --quiet --disable-pip-version-check \
        "checkov==$CHECKOV_VERSION" || {
      echo "ci: pip could not install checkov; check access to PyPI" >&2
      exit 1
    }
  fi
}

# The benchmark's baseline (services/extractor/bench/original_path.py) runs the original's
# per-record Python, which decrypts with pycryptodome. Installed only by ci/bench.sh.
PYCRYPTODOME_VERSION="3.23.0"

intraday_bench_tools() {
  intraday_tools_pinned pycryptodome "$PYCRYPTODOME_VERSION"
}
