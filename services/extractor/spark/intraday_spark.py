"""One extraction run spread over a cluster's core nodes: a Spark application whose tasks each
run the extractor binary on one key range of one collection.

    spark-submit --master yarn --deploy-mode client \\
        --conf spark.task.maxFailures=2 --conf spark.speculation=false \\
        intraday_spark.py --extractor /usr/local/bin/intraday-extractor [--ranges N] \\
        -- EXTRACTOR_ARGS...

EXTRACTOR_ARGS are the arguments a single-node run gives the extractor (--correlation-id,
--collection, --output, ...). The driver

1. asks the extractor for the run's tasks (`--plan --ranges N`): each collection's key space
   split at its region boundaries (`get_splits`), one JSON line per range;
2. runs one Spark task per range; each runs `EXTRACTOR --task LINE`, which scans its range
   in its own `hbase shell` (STARTROW, STOPROW and the run's TIMERANGE), writes its own part
   files (`part-<run id>-tNNNNN-...`) and rejects, and a task manifest
   `_manifests/<run id>/task-NNNNN.json`. A failed task is retried once by Spark
   (spark.task.maxFailures=2); the retry replaces its own files. A second failure fails the
   application;
3. once every task succeeded, commits the run (`--commit N`): the extractor checks every task
   manifest is there and of this plan, and writes the run's manifest last.

So a run without a manifest is an incomplete run, as for a single-node run: nothing partial
is published. The driver runs in client mode on the primary node (where the EMR step runs),
and the extractor must be installed at the same path on every node (the bootstrap action
installs it).
"""

import argparse
import json
import subprocess
import sys

from pyspark import SparkConf, SparkContext

# How much of a failed extractor's stderr goes into the error.
STDERR_TAIL = 8 * 1024


class ExtractorFailed(Exception):
    """The extractor exited non-zero; the message carries what it said."""


def call(command, what):
    """Runs the extractor to completion; its stdout, or ExtractorFailed with its stderr's end.
    Its stderr (JSON log lines) is passed on to ours, so it lands in the executor's log."""
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    sys.stderr.write(done.stderr.decode("utf-8", "replace"))
    sys.stderr.flush()
    if done.returncode != 0:
        tail = done.stderr[-STDERR_TAIL:].decode("utf-8", "replace")
        raise ExtractorFailed(
            f"{what}: `{command[0]}` exited with status {done.returncode}; "
            f"its stderr ends with:\n{tail}"
        )
    return done.stdout.decode("utf-8")


def task_runner(extractor, args, workers):
    """The function each Spark task runs over its partition: one range per partition."""

    def run(lines):
        for line in lines:
            task = json.loads(line)
            command = [extractor, *args, "--task", line]
            if workers and "--workers" not in args:
                command += ["--workers", str(workers)]
            out = call(
                command,
                f"task {task['index']} of {task['of']} ({task['collection']})",
            )
            yield out.strip()

    return run


def parse(argv):
    parser = argparse.ArgumentParser(
        prog="intraday_spark.py",
        description="One extraction run as a Spark application: a task per key range.",
    )
    parser.add_argument("--extractor", required=True, help="the extractor binary, on every node")
    parser.add_argument(
        "--ranges",
        type=int,
        default=None,
        help="ranges per collection (default: 3 per core Spark offers)",
    )
    parser.add_argument("extractor_args", nargs=argparse.REMAINDER)
    opts = parser.parse_args(argv)
    args = opts.extractor_args
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        parser.error("give the extractor's arguments after `--`")
    for own in ("--plan", "--task", "--commit", "--ranges"):
        if own in args:
            parser.error(f"{own} is the driver's to give; remove it from the extractor's arguments")
    if opts.ranges is not None and opts.ranges < 1:
        parser.error("--ranges must be at least 1")
    return opts.extractor, opts.ranges, args


def main(argv):
    extractor, ranges, args = parse(argv)
    # A SparkContext, not a SparkSession: the driver runs no SQL and needs no warehouse.
    sc = SparkContext.getOrCreate(SparkConf().setAppName("intraday-extract"))
    try:
        conf = sc.getConf()
        # Two attempts of one range at once would write the same part files.
        if conf.get("spark.speculation", "false").lower() == "true":
            raise ExtractorFailed(
                "spark.speculation is on: two attempts of one range would write the same "
                "files; submit with --conf spark.speculation=false"
            )
        ranges = ranges or 3 * sc.defaultParallelism
        lines = call([extractor, *args, "--plan", "--ranges", str(ranges)], "planning the run")
        tasks = [line for line in lines.splitlines() if line.strip()]
        if not tasks:
            raise ExtractorFailed("planning the run: the extractor listed no task")
        print(f"intraday: {len(tasks)} task(s), {ranges} range(s) per collection", file=sys.stderr)
        workers = int(conf.get("spark.task.cpus", "1"))
        written = (
            sc.parallelize(tasks, len(tasks))
            .mapPartitions(task_runner(extractor, args, workers))
            .collect()
        )
        done = sorted(json.loads(w)["task"]["index"] for w in written)
        if done != list(range(len(tasks))):
            raise ExtractorFailed(f"tasks reported {done}, not 0 to {len(tasks) - 1}")
        print(call([extractor, *args, "--commit", str(len(tasks))], "committing the run").strip())
        return 0
    except ExtractorFailed as e:
        print(f"intraday_spark: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a task's failure reaches the driver as a Spark job failure
        print(
            f"intraday_spark: error: the run's tasks failed, so its manifest is not written: "
            f"{first_line(e)}",
            file=sys.stderr,
        )
        return 1
    finally:
        sc.stop()


def first_line(error):
    """Spark wraps a task's exception in a Java stack trace: keep the extractor's own words."""
    text = str(error)
    marker = "ExtractorFailed: "
    if marker in text:
        text = text[text.index(marker) + len(marker) :]
        lines = text.splitlines()
        return "\n".join(lines[:12])
    return text.splitlines()[0] if text else repr(error)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
