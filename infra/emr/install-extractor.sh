#!/bin/bash
# EMR bootstrap action: copies the extractor binary onto every node.
# Arguments: <s3 uri of the binary> <install path>
set -euo pipefail
aws s3 cp "$1" /tmp/intraday-extractor
sudo install -m 0755 /tmp/intraday-extractor "$2"
