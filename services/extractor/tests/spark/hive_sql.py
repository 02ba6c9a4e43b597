"""Runs Hive DDL and queries in Spark with Hive support (local mode, a Derby metastore of its
own) and writes every query's rows as JSON.

    python hive_sql.py PLAN.json RESULT.json

PLAN.json: {"statements": ["CREATE ...", ...], "queries": {"name": "SELECT ...", ...}}.
RESULT.json: {"name": [[col, col, ...], ...], ...}, rows in the order the query returns them.
Parquet tables are read through Hive's ParquetHiveSerDe, as Hive on EMR reads them, not
through Spark's own reader.
"""

import json
import os
import sys
import tempfile

from pyspark.sql import SparkSession


def main(plan_path, result_path):
    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    work = tempfile.mkdtemp(prefix="intraday-spark-")
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("intraday-hive-tables")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.warehouse.dir", os.path.join(work, "warehouse"))
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            "jdbc:derby:;databaseName=%s;create=true" % os.path.join(work, "metastore_db"),
        )
        .config("spark.sql.hive.convertMetastoreParquet", "false")
        .config("spark.driver.extraJavaOptions", "-Dderby.system.home=%s" % work)
        .enableHiveSupport()
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        for statement in plan["statements"]:
            spark.sql(statement)
        results = {}
        for name, query in plan["queries"].items():
            results[name] = [list(row) for row in spark.sql(query).collect()]
    finally:
        spark.stop()
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: hive_sql.py PLAN.json RESULT.json")
    main(sys.argv[1], sys.argv[2])
