#!/bin/bash
# EMR bootstrap action, run on every node before its applications start:
#  - installs the extractor, after checking the downloaded binary's SHA-256;
#  - installs the Spark driver (intraday_spark.py) the same way, when given;
#  - writes the data key service's client certificate, key and CA, from a Secrets Manager
#    secret, readable by the step's user only.
#
#   bootstrap.sh [--extractor s3://… --sha256 HEX --install-path PATH]
#                [--spark-driver s3://… --spark-driver-sha256 HEX --spark-driver-path PATH]
#                [--dks-tls-secret NAME|ARN --tls-dir DIR] [--owner USER] [--region REGION]
#
# The secret's SecretString is JSON: {"certificate": PEM, "private_key": PEM, "ca": PEM}.
# Bootstrap actions run as the hadoop user, with sudo for what needs root, and steps run
# as hadoop: https://docs.aws.amazon.com/emr/latest/ManagementGuide/emr-plan-bootstrap.html
# Nothing here echoes the secret; set -x must never be added.
set -euo pipefail
umask 077

die() { echo "intraday bootstrap: $*" >&2; exit 1; }

extractor="" sha256="" install_path="" driver="" driver_sha256="" driver_path="" secret="" tls_dir="" owner="hadoop" region=""
while [ $# -gt 0 ]; do
  case "$1" in
    --extractor) extractor="${2:?--extractor needs an s3:// location}"; shift 2 ;;
    --sha256) sha256="${2:?--sha256 needs a value}"; shift 2 ;;
    --install-path) install_path="${2:?--install-path needs a path}"; shift 2 ;;
    --spark-driver) driver="${2:?--spark-driver needs an s3:// location}"; shift 2 ;;
    --spark-driver-sha256) driver_sha256="${2:?--spark-driver-sha256 needs a value}"; shift 2 ;;
    --spark-driver-path) driver_path="${2:?--spark-driver-path needs a path}"; shift 2 ;;
    --dks-tls-secret) secret="${2:?--dks-tls-secret needs a name}"; shift 2 ;;
    --tls-dir) tls_dir="${2:?--tls-dir needs a path}"; shift 2 ;;
    --owner) owner="${2:?--owner needs a user}"; shift 2 ;;
    --region) region="${2:?--region needs a region}"; shift 2 ;;
    *) die "unknown argument \`$1\`" ;;
  esac
done
if [ -n "$extractor$sha256$install_path" ] && { [ -z "$extractor" ] || [ -z "$sha256" ] || [ -z "$install_path" ]; }; then
  die "--extractor, --sha256 and --install-path go together"
fi
if [ -n "$driver$driver_sha256$driver_path" ] && { [ -z "$driver" ] || [ -z "$driver_sha256" ] || [ -z "$driver_path" ]; }; then
  die "--spark-driver, --spark-driver-sha256 and --spark-driver-path go together"
fi
if [ -n "$secret$tls_dir" ] && { [ -z "$secret" ] || [ -z "$tls_dir" ]; }; then
  die "--dks-tls-secret and --tls-dir go together"
fi
[[ -z "$sha256" || "$sha256" =~ ^[0-9a-f]{64}$ ]] || die "--sha256 \`$sha256\` is not a SHA-256 in lower-case hex"
[[ -z "$driver_sha256" || "$driver_sha256" =~ ^[0-9a-f]{64}$ ]] || die "--spark-driver-sha256 \`$driver_sha256\` is not a SHA-256 in lower-case hex"
id "$owner" >/dev/null 2>&1 || die "the step's user \`$owner\` does not exist on this node"

# Root for installing; the hadoop user gets there through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ] || ! command -v sudo >/dev/null; then "$@"; else sudo "$@"; fi
}

# The AWS CLI needs a region: the one given, the environment's, or the node's own (IMDSv2).
if [ -n "$region" ]; then
  export AWS_DEFAULT_REGION="$region"
elif [ -z "${AWS_REGION:-}${AWS_DEFAULT_REGION:-}" ]; then
  token=$(curl -sSf --max-time 5 -X PUT http://169.254.169.254/latest/api/token \
    -H "X-aws-ec2-metadata-token-ttl-seconds: 60") || die "no --region and no instance metadata to find it"
  AWS_DEFAULT_REGION=$(curl -sSf --max-time 5 -H "X-aws-ec2-metadata-token: $token" \
    http://169.254.169.254/latest/meta-data/placement/region) || die "no --region and no instance metadata to find it"
  export AWS_DEFAULT_REGION
fi

# A private directory of our own: never a fixed /tmp path another user could prepare.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# install_checked WHAT NAME S3_URI SHA256 PATH MODE: downloads NAME (its name in dist/emr/)
# into the private directory, and installs it at PATH only if its SHA-256 is the one the
# launch parameters give.
install_checked() {
  local what="$1" name="$2" from="$3" sum="$4" path="$5" mode="$6" actual
  aws s3 cp --only-show-errors "$from" "$work/$name" || die "could not download $what from $from"
  actual=$(sha256sum "$work/$name" | cut -d' ' -f1)
  [ "$actual" = "$sum" ] ||
    die "$what at $from has SHA-256 $actual, not $sum as the launch parameters say; upload dist/emr/$name and its dist/emr/$name.sha256 together"
  # The folder explicitly 0755: under umask 077 an older install -D could make it private,
  # and the step's user must read what is in it.
  as_root install -d -m 0755 "$(dirname "$path")"
  as_root install -m "$mode" "$work/$name" "$path"
  echo "intraday bootstrap: installed $what ($sum) at $path" >&2
}

if [ -n "$extractor" ]; then
  install_checked "the extractor" intraday-extractor "$extractor" "$sha256" "$install_path" 0755
fi
# spark-submit reads the driver as the step's user; it is a script, not a program.
if [ -n "$driver" ]; then
  install_checked "the Spark driver" intraday_spark.py "$driver" "$driver_sha256" "$driver_path" 0644
fi

if [ -n "$secret" ]; then
  aws secretsmanager get-secret-value --secret-id "$secret" --query SecretString \
    --output text >"$work/tls.json" || die "could not read the secret $secret"
  as_root python3 - "$work/tls.json" "$tls_dir" "$owner" <<'PY' || die "the secret $secret cannot be used (see above)"
import json, os, pwd, sys

source, directory, owner = sys.argv[1:4]
try:
    material = json.load(open(source))
except ValueError:
    sys.exit("intraday bootstrap: the secret is not JSON with certificate, private_key and ca")
files = {"certificate": "client.crt", "private_key": "client.key", "ca": "ca.crt"}
for field in files:
    value = material.get(field) if isinstance(material, dict) else None
    if not isinstance(value, str) or "-----BEGIN" not in value:
        sys.exit(f"intraday bootstrap: the secret's `{field}` is missing or not PEM")
user = pwd.getpwnam(owner)
os.makedirs(directory, mode=0o700, exist_ok=True)
os.chown(directory, user.pw_uid, user.pw_gid)
os.chmod(directory, 0o700)
for field, name in files.items():
    path = os.path.join(directory, name)
    temporary = path + ".partial"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o400)
    with os.fdopen(fd, "w") as out:
        out.write(material[field])
    os.chown(temporary, user.pw_uid, user.pw_gid)
    os.chmod(temporary, 0o400)
    os.replace(temporary, path)
PY
  echo "intraday bootstrap: wrote the data key service's TLS material to $tls_dir for $owner" >&2
fi
