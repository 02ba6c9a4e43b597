//! What an operator types and sees, pinned. Each test is a session of `intradayctl` commands
//! against its own stack on moto server, seeded here with a known history; the whole session
//! (each command line, its exit status when not 0, its stdout, its stderr) is compared with
//! `tests/transcripts/<session>.txt` by snapbox. A change to any command's output fails here
//! until the transcript is rewritten and the diff reviewed:
//!
//! ```console
//! SNAPSHOTS=overwrite cargo nextest run -p intradayctl --test moto_transcripts
//! ```
//!
//! Values no seed can fix are redacted before comparing: `[STACK]`, `[ENDPOINT]`, `[BUCKET]`,
//! `[ID]` (the secret's random suffix),
//! `[CLUSTER]` (moto's cluster ids), `[UUID]` (message ids), `[RUN]` (the time-and-random part
//! of a manual run id), `[NOW]` and `[NOW_MS]` (times of this run, as text and epoch ms).
//!
//! Read-only commands run twice, as a table and as `--output json`: `Session::both` checks that
//! every table cell is in the JSON (times as epoch ms), so scripts never get less than people.

use std::path::PathBuf;
use std::process::Command;

use intraday_aws::{JobStore, Queues};
use intraday_core::{Collection, CorrelationId, JobRecord, JobStatus};
use intraday_testkit as kit;
use serde_json::Value;

mod common;
use common::{Stack, collections_secret, stack_with};

/// One session's commands and what they printed, as it will be compared.
struct Session {
    name: &'static str,
    env: Vec<(&'static str, String)>,
    home: PathBuf,
    redactions: snapbox::Redactions,
    text: String,
}

impl Session {
    /// A session against `stack`, with the stack and endpoint given as the environment gives
    /// them (`INTRADAY_STACK`, `AWS_ENDPOINT_URL`), so commands read as an operator types them.
    /// The process environment is cleared: no profile or configuration of this machine leaks in.
    fn new(name: &'static str, stack: &Stack) -> Self {
        let home = std::env::temp_dir().join(kit::unique("transcript-home"));
        std::fs::create_dir_all(&home).expect("home");
        let mut redactions = snapbox::Redactions::new();
        let pattern = |re: &str| regex::Regex::new(re).expect("pattern");
        redactions
            .insert("[STACK]", stack.name.clone())
            .and_then(|()| redactions.insert("[ENDPOINT]", kit::moto().to_owned()))
            .and_then(|()| {
                redactions.insert(
                    "[UUID]",
                    pattern(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
                )
            })
            .and_then(|()| {
                redactions.insert(
                    "[RUN]",
                    pattern(r"(?:manual|backfill)-(?<redacted>\d{8}-\d{4}-[0-9a-f]{4})"),
                )
            })
            .and_then(|()| redactions.insert("[CLUSTER]", pattern(r"j-[0-9A-Z]{13}\b")))
            .and_then(|()| {
                redactions.insert(
                    "[ID]",
                    pattern(r"/intraday/collections-(?<redacted>[0-9a-f]{8})\b"),
                )
            })
            .and_then(|()| redactions.insert("[BUCKET]", pattern(r"\bbucket-[0-9a-f]{8}\b")))
            // The seeds are in 2024: anything from mid-2025 on is this run's clock.
            .and_then(|()| {
                redactions.insert(
                    "[NOW]",
                    pattern(r"\b20(?:2[5-9]|[3-9]\d)-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"),
                )
            })
            .and_then(|()| redactions.insert("[NOW_MS]", pattern(r"\b1(?:7[5-9]|[89]\d)\d{10}\b")))
            .expect("redactions");
        Self {
            name,
            env: vec![
                ("AWS_ENDPOINT_URL", kit::moto().to_owned()),
                ("AWS_REGION", kit::REGION.to_owned()),
                ("INTRADAY_STACK", stack.name.clone()),
                ("AWS_ACCESS_KEY_ID", "test".to_owned()),
                ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
                ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
                ("HOME", home.display().to_string()),
                ("USER", "operator".to_owned()),
            ],
            home,
            redactions,
            text: String::new(),
        }
    }

    /// A line of explanation in the transcript.
    fn say(&mut self, text: &str) {
        self.text.push_str(&format!("# {text}\n\n"));
    }

    /// Runs `intradayctl ARGS` and adds it to the transcript; returns its stdout.
    fn run(&mut self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_intradayctl"))
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v.as_str())))
            .output()
            .expect("run intradayctl");
        let line: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains([' ', '\'', '"', '$', '*']) {
                    format!("'{a}'")
                } else {
                    (*a).to_owned()
                }
            })
            .collect();
        self.text
            .push_str(&format!("$ intradayctl {}\n", line.join(" ")));
        match out.status.code() {
            Some(0) => {}
            Some(code) => self.text.push_str(&format!("? {code}\n")),
            None => self.text.push_str("? killed\n"),
        }
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        self.text.push_str(&stdout);
        if !stderr.is_empty() {
            self.text.push_str("[stderr]\n");
            self.text.push_str(&stderr);
        }
        self.text.push('\n');
        stdout
    }

    /// Runs a read-only command as a table, then as JSON, and fails if a table cell is not in
    /// the JSON or the JSON does not parse from stdout alone.
    fn both(&mut self, args: &[&str]) {
        self.both_except(args, &[]);
    }

    /// [`Session::both`] for a command whose second run changes a column (a peek is one more
    /// receive): `skip` names the columns not compared.
    fn both_except(&mut self, args: &[&str], skip: &[&str]) {
        let table = self.run(args);
        let json_args: Vec<&str> = args.iter().copied().chain(["--output", "json"]).collect();
        let json = self.run(&json_args);
        let json: Value = serde_json::from_str(&json).unwrap_or_else(|e| {
            panic!(
                "`{}` -o json: stdout is not JSON ({e}):\n{json}",
                args.join(" ")
            )
        });
        let missing = missing_from_json(&table, &json, skip);
        assert!(
            missing.is_empty(),
            "`intradayctl {}`: the table shows what the JSON does not carry: {missing:?}\n{json:#}",
            args.join(" ")
        );
    }

    /// Compares the session with its transcript file.
    fn check(self) {
        let _ = std::fs::remove_dir_all(&self.home);
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/transcripts")
            .join(format!("{}.txt", self.name));
        let actual = self.redactions.redact(&self.text);
        snapbox::Assert::new()
            .action_env(snapbox::assert::DEFAULT_ACTION_ENV)
            .normalize_paths(false)
            .eq(actual, snapbox::Data::read_from(&path, None));
    }
}

/// The table cells (below the header and its dashes) that the JSON does not carry: a time
/// must be there as epoch ms, a window as both bounds, a number as a number or string, text
/// as a string that is or holds it (a body cut short with `…` by its start).
fn missing_from_json(table: &str, json: &Value, skip: &[&str]) -> Vec<String> {
    let mut scalars = Vec::new();
    collect(json, &mut scalars);
    let lines: Vec<&str> = table.lines().collect();
    let Some(dashes) = lines.iter().position(|l| l.starts_with("---")) else {
        return Vec::new();
    };
    // Columns start where a run of dashes starts.
    let ruler: Vec<char> = lines[dashes].chars().collect();
    let starts: Vec<usize> = (0..ruler.len())
        .filter(|&i| ruler[i] == '-' && (i == 0 || ruler[i - 1] == ' '))
        .collect();
    let header: Vec<char> = lines[dashes - 1].chars().collect();
    let names: Vec<String> = starts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            let end = starts
                .get(i + 1)
                .map_or(header.len(), |&n| n.min(header.len()));
            header[start.min(end)..end]
                .iter()
                .collect::<String>()
                .trim()
                .to_owned()
        })
        .collect();
    // A row reaches the second column with two spaces before each column; a note does not.
    let is_row = |row: &[char]| {
        starts.len() < 2
            || row.len() > starts[1]
                && starts[1..]
                    .iter()
                    .filter(|&&at| at < row.len())
                    .all(|&at| row[at - 2] == ' ' && row[at - 1] == ' ')
    };
    let mut missing = Vec::new();
    for line in &lines[dashes + 1..] {
        let row: Vec<char> = line.chars().collect();
        if !is_row(&row) {
            break;
        }
        for (i, &start) in starts.iter().enumerate() {
            let end = starts
                .get(i + 1)
                .map_or(row.len(), |&next| next.min(row.len()));
            let cell = row[start.min(end)..end].iter().collect::<String>();
            let cell = cell.trim();
            if skip.contains(&names[i].as_str()) {
                continue;
            }
            if !(cell.is_empty() || cell == "-" || carried(cell, &scalars)) {
                missing.push(cell.to_owned());
            }
        }
    }
    missing
}

fn collect(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::String(s) => into.push(s.clone()),
        Value::Number(n) => into.push(n.to_string()),
        Value::Bool(b) => into.push(b.to_string()),
        // A count in a table is carried by its list.
        Value::Array(items) => {
            into.push(items.len().to_string());
            items.iter().for_each(|v| collect(v, into));
        }
        Value::Object(fields) => fields.values().for_each(|v| collect(v, into)),
        Value::Null => {}
    }
}

fn epoch_ms(text: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000).to_string())
}

fn carried(cell: &str, scalars: &[String]) -> bool {
    // A body on one line, as `dlq peek` shows it: the JSON keeps it as sent.
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(ms) = epoch_ms(cell) {
        return scalars.contains(&ms);
    }
    if let Some((start, end)) = cell
        .strip_prefix('[')
        .and_then(|c| c.strip_suffix(')'))
        .and_then(|c| c.split_once(", "))
    {
        return [start, end]
            .iter()
            .all(|t| epoch_ms(t).is_some_and(|ms| scalars.contains(&ms)));
    }
    if let Some(cut) = cell.strip_suffix('…') {
        return scalars.iter().any(|s| flat(s).starts_with(cut));
    }
    scalars.iter().any(|s| s == cell || flat(s) == cell)
}

const T_1000: u64 = 1_710_151_200_000; // 2024-03-11T10:00:00Z
const HOUR: u64 = 3_600_000;

/// A job item as the pipeline leaves it, every field set from `start` so the output is fixed.
fn item(run: &str, collection: &str, status: JobStatus, start: u64) -> JobRecord {
    let mut job = JobRecord::new(
        CorrelationId::new(run).expect("run id"),
        Collection::parse(collection).expect("collection"),
        status,
        start + HOUR,
    );
    job.processed_data_start = Some(start);
    job.window_end = Some(start + HOUR);
    job.emr_cluster_id = Some("j-3KQ9V0L7Z2XWE".into());
    job.emr_ready_time = Some(start + HOUR + 420_000);
    job.status_changed_at = Some(start + HOUR + 1_260_250);
    job.database = Some("intraday".into());
    job.format = Some("parquet".into());
    if status == JobStatus::EmrCompleted {
        job.processed_data_end = Some(start + HOUR - 1_234);
    }
    job
}

/// A stack whose secret lists claimant and contract, with three runs: claimant completed at
/// 11:00 and failed at 12:00, contract completed at 11:00.
async fn stack_with_history() -> Stack {
    let secret = collections_secret(&["db.core.claimant", "db.core.contract"]).await;
    let stack = stack_with(&[("CollectionsSecretName", &secret)]).await;
    let store = JobStore::new(
        kit::aws().await.dynamodb(),
        stack.outputs["JobTableName"].clone(),
    );
    for job in [
        item(
            "scheduled-20240311-1100",
            "db.core.claimant",
            JobStatus::EmrCompleted,
            T_1000,
        ),
        item(
            "scheduled-20240311-1200",
            "db.core.claimant",
            JobStatus::EmrFailed,
            T_1000 + HOUR,
        ),
        item(
            "scheduled-20240311-1100",
            "db.core.contract",
            JobStatus::EmrCompleted,
            T_1000,
        ),
    ] {
        assert!(store.create(&job).await.expect("item"));
    }
    stack
}

#[tokio::test]
async fn moto_transcript_status() {
    let stack = stack_with_history().await;
    let mut s = Session::new("status", &stack);
    s.say("Seeded: claimant completed 10:00-11:00 and failed 11:00-12:00; contract completed 10:00-11:00.");
    s.both(&["status"]);
    s.both(&["status", "--collection", "db.core.claimant"]);
    s.both(&[
        "status",
        "--collection",
        "core:claimant",
        "--since",
        "2024-03-11T11:30:00Z",
    ]);
    s.both(&["status", "--run", "scheduled-20240311-1200"]);
    s.say("A typo is not a new collection; an unknown run is not found.");
    s.run(&["status", "--collection", "db.core.claimnat"]);
    s.run(&["status", "--run", "scheduled-20240311-1300"]);
    s.run(&["status", "--since", "yesterday"]);
    s.check();
}

#[tokio::test]
async fn moto_transcript_ack() {
    let stack = stack_with_history().await;
    let mut s = Session::new("ack", &stack);
    s.say("A failed run is acknowledged with who (--by, else $USER, and the AWS caller) and why.");
    s.run(&[
        "ack",
        "scheduled-20240311-1200",
        "--collection",
        "db.core.claimant",
        "--reason",
        "region server restarted",
    ]);
    s.say("Each collection reports its own result; exit 1 when any is not acknowledged now.");
    s.run(&[
        "ack",
        "scheduled-20240311-1200",
        "--collection",
        "db.core.claimant",
        "--reason",
        "again",
        "-o",
        "json",
    ]);
    s.run(&[
        "ack",
        "scheduled-20240311-1100",
        "--collection",
        "db.core.claimant,db.core.contract",
        "--reason",
        "not failed",
    ]);
    s.run(&[
        "ack",
        "scheduled-20240311-1300",
        "--collection",
        "db.core.claimant",
        "--reason",
        "no such run",
    ]);
    s.both(&["status", "--run", "scheduled-20240311-1200"]);
    s.check();
}

#[tokio::test]
async fn moto_transcript_trigger_and_backfill() {
    let stack = stack_with_history().await;
    let mut s = Session::new("runs", &stack);
    s.run(&["trigger", "--collection", "db.core.claimant"]);
    s.run(&["trigger", "-o", "json"]);
    s.run(&["trigger", "--collection", "db.core.claimant,db.core.nosuch"]);
    s.say("A backfill plan, then the message it would send.");
    s.run(&[
        "backfill",
        "--collection",
        "db.core.claimant",
        "--start",
        "2024-03-01T00:00:00Z",
        "--end",
        "2024-03-02T00:00:00Z",
        "--dry-run",
    ]);
    s.run(&[
        "backfill",
        "--collection",
        "core:contract",
        "--start",
        "1709251200000",
        "--end",
        "1709337600000",
        "--dry-run",
        "-o",
        "json",
    ]);
    s.say("Refused: a database or prefix not the stack's backfill ones, a window that ends before it starts; without --force, a window in the future.");
    s.run(&[
        "backfill",
        "--collection",
        "db.core.claimant",
        "--start",
        "2024-03-01T00:00:00Z",
        "--end",
        "2024-03-02T00:00:00Z",
        "--database",
        "intraday",
    ]);
    let live = format!("s3://{}/data/", stack.outputs["OutputBucketName"]);
    s.run(&[
        "backfill",
        "--collection",
        "db.core.claimant",
        "--start",
        "2024-03-01T00:00:00Z",
        "--end",
        "2024-03-02T00:00:00Z",
        "--prefix",
        &live,
    ]);
    s.run(&[
        "backfill",
        "--collection",
        "db.core.claimant",
        "--start",
        "2024-03-01T00:00:00Z",
        "--end",
        "2999-01-01T00:00:00Z",
    ]);
    s.run(&[
        "backfill",
        "--collection",
        "db.core.claimant",
        "--start",
        "2024-03-02T00:00:00Z",
        "--end",
        "2024-03-01T00:00:00Z",
    ]);
    s.run(&[
        "backfill",
        "--collection",
        "db.core.claimant",
        "--start",
        "yesterday",
        "--end",
        "2024-03-01T00:00:00Z",
    ]);
    s.check();
}

#[tokio::test]
async fn moto_transcript_replay() {
    let stack = stack_with_history().await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/transcripts/messages");
    let file = |name: &str| format!("{dir}/{name}");
    let mut s = Session::new("replay", &stack);
    s.redactions.insert("[MESSAGES]", dir).expect("var");
    s.say("A message is checked against its type's schema before anything is sent.");
    s.run(&[
        "replay",
        "launcher",
        "--file",
        &file("launch-bad-window.json"),
    ]);
    s.run(&[
        "replay",
        "launcher",
        "--file",
        &file("launch-unknown-type.json"),
    ]);
    s.run(&["replay", "launcher", "--file", &file("no-such-file.json")]);
    s.run(&["replay", "nosuch", "--file", &file("launch.json")]);
    s.run(&["replay", "launcher", "--file", &file("launch.json")]);
    s.run(&[
        "replay",
        "--queue",
        "launcher",
        "--file",
        &file("launch.json"),
        "-o",
        "json",
    ]);
    s.check();
}

#[tokio::test]
async fn moto_transcript_dead_letters() {
    let stack = stack_with_history().await;
    let queues = Queues::new(kit::aws().await.sqs());
    let dlq = &stack.outputs["SchedulerDlqUrl"];
    queues
        .send(dlq, include_str!("transcripts/messages/run.json"), None)
        .await
        .expect("send");
    queues
        .send(
            dlq,
            "{\"type\": \"RunRequested\",\n \"collections\": \"db.core.claimant\"\n}",
            None,
        )
        .await
        .expect("send");
    let mut s = Session::new("dlq", &stack);
    s.say(
        "Seeded: two messages in the scheduler's dead-letter queue, the second over three lines.",
    );
    s.both(&["dlq", "list"]);
    s.say("Each message once, on one line, left where it was (a peek counts as one receive).");
    s.both_except(&["dlq", "peek", "scheduler"], &["RECEIVES"]);
    s.both(&["dlq", "peek", "launcher"]);
    s.run(&["dlq", "peek", "nosuch"]);
    s.both(&["dlq", "redrive", "scheduler", "--dry-run"]);
    s.run(&["dlq", "redrive", "scheduler"]);
    s.run(&["dlq", "list"]);
    s.check();
}

#[tokio::test]
async fn moto_transcript_clusters() {
    let aws = kit::aws().await;
    let bucket = kit::bucket(&aws).await;
    let root = format!("s3://{bucket}/hbase");
    let stack = stack_with(&[("HBaseRootS3Uri", &root)]).await;
    let cluster = intraday_aws::Emr::new(aws.emr())
        .run(&kit::cluster_request(&[("ManagedBy", "intraday")]))
        .await
        .expect("cluster");
    let keys: Vec<String> = ["region-00001", "region-00002", ".tableinfo"]
        .iter()
        .map(|k| format!("hbase/data/hbase/meta_{cluster}/{k}"))
        .collect();
    kit::put_empty_objects(&aws, &bucket, &keys).await;

    let mut s = Session::new("clusters", &stack);
    s.say("Seeded: a running cluster of ours, and its replica metadata under the HBase root.");
    s.run(&["reap", &cluster, "--dry-run"]);
    s.run(&["cluster", "stop", &cluster]);
    s.run(&["cluster", "stop", &cluster, "-o", "json"]);
    s.both(&["reap", &cluster, "--dry-run"]);
    s.run(&["reap", &cluster, "-o", "json"]);
    s.run(&["reap", &cluster]);
    s.say("Not ours, not there, not an id.");
    let foreign = intraday_aws::Emr::new(aws.emr())
        .run(&kit::cluster_request(&[]))
        .await
        .expect("cluster");
    s.run(&["cluster", "stop", &foreign]);
    s.run(&["reap", "j-NOSUCH00000"]);
    s.run(&["cluster", "stop", "i-0abc"]);
    s.say("An investigation cluster from infra/emr/cluster.json.");
    s.run(&["cluster", "start"]);
    s.check();
}

#[tokio::test]
async fn moto_transcript_migrate_check() {
    let stack = stack_with_history().await;
    let mut s = Session::new("migrate", &stack);
    s.say("What the first run would do; the failed claimant run blocks it until acknowledged.");
    s.both(&["migrate", "check"]);
    s.run(&[
        "ack",
        "scheduled-20240311-1200",
        "--collection",
        "db.core.claimant",
        "--reason",
        "checked",
    ]);
    s.both(&["migrate", "check"]);
    s.check();
}

#[tokio::test]
async fn moto_transcript_help() {
    // Help touches no AWS configuration: the stack only names the environment.
    let stack = Stack {
        name: "help-transcript".into(),
        outputs: Default::default(),
    };
    let mut s = Session::new("help", &stack);
    s.run(&["--help"]);
    s.run(&["status", "--help"]);
    s.run(&["dlq", "--help"]);
    s.run(&["dlq", "peek", "--help"]);
    s.run(&["backfill"]);
    s.run(&["nosuch"]);
    s.check();
}
