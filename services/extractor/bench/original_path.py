#!/usr/bin/env python3
"""The original system's per-record path, as a baseline for intraday-extractor-bench.

The original's EMR step (dwp/dataworks-aws-ingest-replica, files/steps/
generate_dataset_from_hbase.py) piped `hbase shell` into HDFS, then ran, in PySpark, for each
line holding `column=`:

    y = [str.strip(i) for i in re.split(r" *column=|, *timestamp=|, *value=", x)]
    json.loads(y[3]) -> message._id, encryption.{initialisationVector,
        encryptedEncryptionKey, keyEncryptionKeyId}, dbObject
    data key: DKS POST, cached by encrypted key
    AES.new(key, AES.MODE_CTR, counter=Counter.new(128, initial_value=int(iv_hex, 16)))
        .decrypt(b64decode(dbObject)).decode("utf8")
    csv.writer(io.StringIO()).writerow([record_id, timestamp, record]) per row
    saveAsTextFile(..., LzopCodec)

This script runs that same per-record Python in one process over a saved scan, and writes
the CSV lines to a local file. It leaves out what the original paid on top (HDFS, Spark's
JVM-to-Python serialisation, LZO in the JVM), so it is a generous baseline: the original's
real throughput per core was lower.

    original_path.py --scan FILE --dks-url URL --out FILE

Needs pycryptodome (the original's `Crypto` package). Prints one line of JSON: records,
seconds, keys fetched.
"""

import argparse
import base64
import binascii
import csv
import io
import json
import re
import sys
import time
import urllib.parse
import urllib.request

from Crypto.Cipher import AES
from Crypto.Util import Counter

dks_cache = {}


def get_key_from_dks(url, kek, cek):
    query = urllib.parse.urlencode({"keyId": kek, "correlationId": 0})
    request = urllib.request.Request(
        f"{url}/datakey/actions/decrypt?{query}", data=cek.encode("ascii"), method="POST"
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())["plaintextDataKey"]


def get_plaintext_key(url, kek, cek):
    plaintext_key = dks_cache.get(cek)
    if not plaintext_key:
        plaintext_key = get_key_from_dks(url, kek, cek)
        dks_cache[cek] = plaintext_key
    return plaintext_key


def decrypt_ciphertext(ciphertext, key, iv):
    iv_int = int(binascii.hexlify(base64.b64decode(iv)), 16)
    counter = Counter.new(AES.block_size * 8, initial_value=iv_int)
    aes = AES.new(base64.b64decode(key), AES.MODE_CTR, counter=counter)
    return aes.decrypt(base64.b64decode(ciphertext)).decode("utf8")


def decrypt_message(item, url):
    json_item = json.loads(item)
    record_id = json_item["message"]["_id"]
    iv = json_item["message"]["encryption"]["initialisationVector"]
    cek = json_item["message"]["encryption"]["encryptedEncryptionKey"]
    kek = json_item["message"]["encryption"]["keyEncryptionKeyId"]
    db_obj = json_item["message"]["dbObject"]
    plaintext_key = get_plaintext_key(url, kek, cek)
    return record_id, decrypt_ciphertext(db_obj, plaintext_key, iv)


def filter_rows(x):
    if x:
        return str(x).find("column=") > -1
    return False


def process_record(x, url):
    y = [str.strip(i) for i in re.split(r" *column=|, *timestamp=|, *value=", x)]
    timestamp = y[2]
    record_id, record = decrypt_message(y[3], url)
    return [record_id, timestamp, record]


def list_to_csv_str(x):
    output = io.StringIO("")
    csv.writer(output).writerow(x)
    return output.getvalue().strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", required=True)
    parser.add_argument("--dks-url", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    started = time.perf_counter()
    records = 0
    # Spark's textFile reads lines as UTF-8 text without their line ends.
    with open(args.scan, encoding="utf-8") as scan, open(args.out, "w", encoding="utf-8") as out:
        for line in scan:
            line = line.rstrip("\n")
            if not filter_rows(line):
                continue
            out.write(list_to_csv_str(process_record(line, args.dks_url)))
            out.write("\n")
            records += 1
    seconds = time.perf_counter() - started
    json.dump({"records": records, "seconds": seconds, "keys": len(dks_cache)}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
