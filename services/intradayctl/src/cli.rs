//! The command line, following the AWS CLI's habits: `--region`, `--profile`,
//! `--endpoint-url`, `--output json|table`; errors on stderr; exit status 0 only on success.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "intradayctl",
    version,
    about = "Operate Intraday: trigger and backfill runs, see their status, acknowledge failures, replay and redrive messages, start and stop clusters, reap replica metadata.",
    after_help = "Examples:\n  intradayctl status --collection db.core.claimant\n  intradayctl ack scheduled-20240311-1030 --collection db.core.claimant --reason 'disk full, resized'\n  intradayctl dlq redrive monitor --dry-run\n  intradayctl --endpoint-url http://127.0.0.1:5000 --region eu-west-2 status"
)]
pub struct Cli {
    /// AWS region (else AWS_REGION or the profile's).
    #[arg(
        long,
        global = true,
        env = "AWS_REGION",
        hide_env_values = true,
        help_heading = "Global options"
    )]
    pub region: Option<String>,
    /// Named profile from ~/.aws/config.
    #[arg(
        long,
        global = true,
        env = "AWS_PROFILE",
        hide_env_values = true,
        help_heading = "Global options"
    )]
    pub profile: Option<String>,
    /// Send every request to this endpoint (an emulator such as moto server).
    #[arg(
        long,
        global = true,
        env = "AWS_ENDPOINT_URL",
        hide_env_values = true,
        help_heading = "Global options"
    )]
    pub endpoint_url: Option<String>,
    /// How to print results.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Table, help_heading = "Global options")]
    pub output: Format,
    /// Seconds to wait for a connection to AWS (as the AWS CLI's option).
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        default_value_t = 5,
        help_heading = "Global options"
    )]
    pub cli_connect_timeout: u64,
    /// Seconds to wait for an answer, per attempt (as the AWS CLI's option); every
    /// operation also gives up after 25 s with its retries.
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        default_value_t = 30,
        help_heading = "Global options"
    )]
    pub cli_read_timeout: u64,
    /// Log what the command and the AWS SDK do, on stderr (-vv for the SDK's detail). Without
    /// it only the result and a one-line error are printed; RUST_LOG overrides both.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,
    /// The CloudFormation stack holding Intraday's resources.
    #[arg(
        long,
        global = true,
        env = "INTRADAY_STACK",
        hide_env_values = true,
        default_value = "intraday",
        help_heading = "Global options"
    )]
    pub stack: String,
    #[command(subcommand)]
    pub command: Command,
    /// The context options (`stack`, `endpoint_url`, `region`, `profile`) typed on the command
    /// line rather than taken from the environment: hints repeat only these.
    #[arg(skip)]
    pub typed: Vec<String>,
}

/// The options that choose where a command runs, by clap id.
pub const CONTEXT_OPTIONS: [&str; 4] = ["stack", "endpoint_url", "region", "profile"];

impl Cli {
    /// Parses `args` (the program's name first), exiting with clap's usage error as
    /// `Cli::parse` does, and notes which context options were typed.
    pub fn parse_with<I, T>(args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches, parser::ValueSource};
        let matches = Self::command().get_matches_from(args);
        let mut cli = Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        cli.typed = CONTEXT_OPTIONS
            .iter()
            .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
            .map(|id| (*id).to_owned())
            .collect();
        cli
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Request a run now, as the schedule would.
    #[command(
        after_help = "Example:\n  intradayctl trigger --collection db.core.claimant,db.core.contract"
    )]
    Trigger {
        /// Only this collection (repeat, or a comma list; default: every collection in the
        /// secret). `db.core.claimant` or `core:claimant`.
        #[arg(
            long = "collection",
            visible_alias = "collections",
            value_name = "COLLECTION",
            value_delimiter = ','
        )]
        collections: Vec<String>,
    },
    /// Extract an explicit window into its own database and prefix; never moves a watermark.
    #[command(
        after_help = "Example:\n  intradayctl backfill --collection db.core.claimant --start 2024-03-01T00:00:00Z --end 2024-03-02T00:00:00Z --dry-run"
    )]
    Backfill {
        /// The collection to backfill (repeat, or a comma list).
        #[arg(
            long = "collection",
            visible_alias = "collections",
            value_name = "COLLECTION",
            value_delimiter = ',',
            required = true
        )]
        collections: Vec<String>,
        /// Window start, inclusive: RFC 3339 time or epoch milliseconds.
        #[arg(long)]
        start: String,
        /// Window end, exclusive: RFC 3339 time or epoch milliseconds.
        #[arg(long)]
        end: String,
        /// Catalog database for the backfill's tables; the stack allows one (default: its
        /// BackfillDatabaseName, else intraday_backfill).
        #[arg(long)]
        database: Option<String>,
        /// Output prefix, under s3://<output bucket>/backfill/ (default:
        /// s3://<output bucket>/backfill/<run>/).
        #[arg(long)]
        prefix: Option<String>,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Send it even with a window that ends in the future.
        #[arg(long)]
        force: bool,
    },
    /// Runs, statuses, windows, clusters, watermarks and locks.
    #[command(
        after_help = "Examples:\n  intradayctl status --run scheduled-20240311-1030\n  intradayctl status --collection db.core.claimant --since 24h"
    )]
    Status {
        /// One run's items.
        #[arg(long, conflicts_with = "collection")]
        run: Option<String>,
        /// One collection's history, watermark and lock.
        #[arg(long)]
        collection: Option<String>,
        /// Only runs triggered since: a duration (90m, 24h, 7d) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// At most this many runs per collection.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Acknowledge a failed run so its collections run again.
    #[command(
        after_help = "Example:\n  intradayctl ack scheduled-20240311-1030 --collection db.core.claimant --reason 'HBase region server restarted'"
    )]
    Ack {
        /// The failed run's correlation id.
        run: String,
        /// The collection to acknowledge (repeat, or a comma list).
        #[arg(
            long = "collection",
            visible_alias = "collections",
            value_name = "COLLECTION",
            value_delimiter = ',',
            required = true
        )]
        collections: Vec<String>,
        /// Why it is safe to go on; recorded on the item.
        #[arg(long)]
        reason: String,
        /// Who acknowledges (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Validate a message against its schema, then publish it to a queue.
    #[command(after_help = "Example:\n  intradayctl replay launcher --file launch.json")]
    Replay {
        /// scheduler, launcher, monitor, tables or reaper (or a rule, as `dlq list` shows),
        /// given as `dlq peek` takes it; `--queue NAME` works too.
        #[arg(value_name = "QUEUE", required_unless_present = "queue_flag")]
        queue: Option<String>,
        /// The same as QUEUE, as earlier versions took it.
        #[arg(long = "queue", value_name = "QUEUE", conflicts_with = "queue")]
        queue_flag: Option<String>,
        /// The message body.
        #[arg(long, conflicts_with = "stdin", required_unless_present = "stdin")]
        file: Option<PathBuf>,
        /// Read the message body from standard input.
        #[arg(long)]
        stdin: bool,
    },
    /// Dead-letter queues: list, peek, redrive.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Investigation clusters.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Delete a terminated cluster's replica metadata (meta_<clusterId>/) from the HBase root.
    #[command(after_help = "Example:\n  intradayctl reap j-1YONHTCP3YZKC --dry-run")]
    Reap {
        /// The terminated cluster's id (`j-…`).
        cluster_id: String,
        /// List what would be deleted and delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// The primary's HBase root (default: the stack's HBaseRootS3Uri).
        #[arg(long)]
        hbase_root: Option<String>,
    },
    /// Switching from the original system: what the first run would do.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// The whole pipeline on this machine, against moto server on loopback.
    #[command(subcommand)]
    Local(LocalCommand),
    /// Shell completions: `intradayctl completions bash > /etc/bash_completion.d/intradayctl`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Deploy the template to moto server, run every service and an EMR stand-in, and take
    /// two runs end to end; exit status non-zero if anything did not complete.
    #[command(
        after_help = "Examples:\n  intradayctl local demo\n  intradayctl local demo --endpoint-url http://127.0.0.1:5000\n  # the files a deploy ships, before uploading them (ci/package.sh writes dist/):\n  intradayctl local demo --lambda-dir dist/lambda --extractor dist/emr/intraday-extractor\n  # the Spark step the launcher submits, on a local Spark:\n  intradayctl local demo --engine spark"
    )]
    Demo {
        /// Give up on a run after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Run the packaged Lambda zips in this directory (`<service>.zip`, as ci/package.sh
        /// writes them) as Lambda runs them, instead of the handlers built into intradayctl.
        /// The stack is deployed with its functions, and each `bootstrap` gets the environment
        /// the template gave its function. One malformed message per queue checks that a bad
        /// message comes back as a batch item failure and reaches its dead-letter queue.
        #[arg(long, value_name = "DIR")]
        lambda_dir: Option<PathBuf>,
        /// The extractor binary the EMR stand-in runs as the step [default: the one beside
        /// intradayctl].
        #[arg(long, value_name = "PATH")]
        extractor: Option<PathBuf>,
        /// Start moto server with IAM enforced and run each service under a session of the
        /// role the stack made for it (sts:AssumeRole), as in Lambda: a call its role does not
        /// allow is refused. moto checks actions, not resources or conditions
        /// (docs/moto-iam.md). With --endpoint-url, the server must have been started with
        /// IAM enforced, and the environment's credentials must be allowed everything.
        #[arg(long)]
        enforce_iam: bool,
        /// Where the step runs the extraction, as the launcher's `engine` setting chooses on
        /// EMR: `single-node` runs the extractor itself; `spark` submits the launcher's own
        /// Spark step to a local Spark (`--master local[2,2]`: two task slots, each task
        /// tried twice), whose tasks each run the extractor on one key range of the stand-in
        /// `hbase` command's tables.
        #[arg(long, value_enum, default_value_t = DemoEngine::SingleNode)]
        engine: DemoEngine,
        /// The `spark-submit` that `--engine spark` runs (pyspark's; `source ci/tools.sh &&
        /// intraday_spark_tools` installs one, and Java 17).
        #[arg(long, value_name = "PATH", default_value = "spark-submit")]
        spark_submit: PathBuf,
    },
}

/// Where the demo's step runs the extraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoEngine {
    SingleNode,
    Spark,
}

impl DemoEngine {
    /// The launcher's name for it (`engine` in the EMR parameters).
    pub fn as_str(self) -> &'static str {
        match self {
            DemoEngine::SingleNode => "single-node",
            DemoEngine::Spark => "spark",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Per collection: the last completed window, where the next run starts, what blocks it
    /// and the catalog table; then every problem that would stop a run, each with its fix.
    /// Reads the job table, the collections secret and the catalog; changes nothing. Exit
    /// status 1 when there is a problem.
    #[command(
        after_help = "Example:\n  intradayctl --stack intraday migrate check\n  intradayctl migrate check --output json | jq '.problems'"
    )]
    Check {
        /// The catalog database to look in [default: the stack's GlueDatabaseName, else intraday].
        #[arg(long)]
        database: Option<String>,
    },
    /// Register the original's output (`<prefix>/<db>_<table>/<YYYYMMDD-HHMM>/`, its CSV) as a
    /// table `<db>_<table>_legacy` per collection, one partition per finished run folder.
    /// Safe to run again; a folder without `_SUCCESS` is left out unless asked.
    #[command(
        after_help = "Example:\n  intradayctl migrate register-legacy --prefix s3://published-bucket/intraday/ --dry-run"
    )]
    RegisterLegacy {
        /// Where the original wrote: the prefix holding its `<db>_<table>/` folders.
        #[arg(long, value_name = "S3_URI")]
        prefix: String,
        /// The catalog database for the legacy tables [default: the stack's GlueDatabaseName].
        #[arg(long)]
        database: Option<String>,
        /// Also register folders without a `_SUCCESS` marker.
        #[arg(long)]
        include_incomplete: bool,
        /// List what would be registered and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// How many messages wait in each dead-letter queue.
    #[command(after_help = "Example:\n  intradayctl dlq list --output json")]
    List,
    /// Show messages without removing them.
    #[command(after_help = "Example:\n  intradayctl dlq peek monitor -n 3")]
    Peek {
        /// A service (scheduler, launcher, monitor, tables, reaper) or a rule
        /// (emr-state-rule, …); `dlq list` shows them all.
        queue: String,
        /// Show at most this many messages.
        #[arg(short = 'n', long, default_value_t = 10)]
        count: usize,
    },
    /// Move messages back to their queue, each exactly once.
    #[command(after_help = "Example:\n  intradayctl dlq redrive scheduler --max 100")]
    Redrive {
        /// A service or a rule, as `dlq list` shows them; its messages go back to the queue
        /// it feeds.
        queue: String,
        /// Move at most this many.
        #[arg(long)]
        max: Option<usize>,
        /// Count what would move and move nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start a cluster from the template with no steps, for investigation; stop it by hand.
    #[command(
        after_help = "Example:\n  intradayctl cluster start --params infra/emr/params/production.json"
    )]
    Start {
        /// Overrides for infra/emr/cluster.json.
        #[arg(long)]
        params: Option<PathBuf>,
    },
    /// Terminate a cluster.
    #[command(after_help = "Example:\n  intradayctl cluster stop j-1YONHTCP3YZKC")]
    Stop {
        /// The cluster's id (`j-…`); only clusters tagged ManagedBy=intraday are stopped.
        cluster_id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("intradayctl").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .command
    }

    #[test]
    fn collections_and_queues_take_one_style_and_the_old_spellings() {
        for args in [
            &["trigger", "--collection", "a:b", "--collection", "c:d"][..],
            &["trigger", "--collections", "a:b,c:d"],
            &["trigger", "--collection", "a:b,c:d"],
        ] {
            let Command::Trigger { collections } = parse(args) else {
                panic!("{args:?}")
            };
            assert_eq!(collections, ["a:b", "c:d"], "{args:?}");
        }
        for args in [
            &["replay", "launcher", "--stdin"][..],
            &["replay", "--queue", "launcher", "--stdin"],
        ] {
            let Command::Replay {
                queue, queue_flag, ..
            } = parse(args)
            else {
                panic!("{args:?}")
            };
            assert_eq!(queue.or(queue_flag).as_deref(), Some("launcher"));
        }
        assert!(Cli::try_parse_from(["intradayctl", "replay", "--stdin"]).is_err());
    }
}
