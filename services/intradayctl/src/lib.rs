//! intradayctl: the operator's CLI. Commands live in `commands/`, each returning a report
//! printed as a table or JSON; `context` finds AWS and the stack's resources.

pub mod cli;
pub mod commands;
pub mod context;
mod error;
pub mod local;
pub mod output;

pub use error::CtlError;

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::CommandFactory;
use intraday_aws::AwsSettings;

use cli::{Cli, ClusterCommand, Command, DlqCommand, LocalCommand, MigrateCommand};
use commands::{ack, cluster, dlq, migrate, reap, replay, runs, status};
use context::Env;
use output::Report;

/// Runs one command; the caller prints the report or the error.
pub async fn run(cli: Cli) -> Result<Report, CtlError> {
    let settings = AwsSettings {
        region: cli.region.clone(),
        profile: cli.profile.clone(),
        endpoint_url: cli.endpoint_url.clone(),
        static_credentials: None,
        timeouts: intraday_aws::Timeouts {
            connect: std::time::Duration::from_secs(cli.cli_connect_timeout.max(1)),
            read: std::time::Duration::from_secs(cli.cli_read_timeout.max(1)),
            ..intraday_aws::Timeouts::default()
        },
        adaptive_retries: true,
    };
    if let Command::Local(LocalCommand::Demo {
        timeout,
        lambda_dir,
        extractor,
        enforce_iam,
        engine,
        spark_submit,
    }) = &cli.command
    {
        return local::demo(local::DemoOptions {
            endpoint_url: cli.endpoint_url.clone(),
            timeout: std::time::Duration::from_secs(*timeout),
            lambda_dir: lambda_dir.clone(),
            extractor: extractor.clone(),
            enforce_iam: *enforce_iam,
            engine: *engine,
            spark_submit: spark_submit.clone(),
        })
        .await;
    }
    // Completions are `eval`ed in shell start-up files: they touch no AWS configuration.
    if let Command::Completions { shell } = &cli.command {
        return Ok(completions(*shell));
    }
    let endpoint = settings.effective_endpoint().unwrap_or_else(|| {
        format!(
            "AWS in {}",
            cli.region.as_deref().unwrap_or("the configured region")
        )
    });
    let env = Env::new(&settings, &cli.stack).await?;
    let context = context_flags(&cli);
    let mut report = command(cli.command, &env)
        .await
        .map_err(|e| e.for_people(&endpoint))?;
    // A hint to copy and run must reach the same stack the user's command did.
    if !context.is_empty() {
        for note in &mut report.notes {
            *note = note.replace("intradayctl ", &format!("intradayctl {context} "));
        }
    }
    Ok(report)
}

/// The flags that chose where a command ran, as the user typed them, to repeat in hints;
/// what came from the environment is in effect for the hint's command too.
pub fn context_flags(cli: &Cli) -> String {
    let typed = |id: &str| cli.typed.iter().any(|t| t == id);
    let mut flags = Vec::new();
    if typed("stack") {
        flags.push(format!("--stack {}", cli.stack));
    }
    for (id, flag, value) in [
        ("endpoint_url", "--endpoint-url", &cli.endpoint_url),
        ("region", "--region", &cli.region),
        ("profile", "--profile", &cli.profile),
    ] {
        if let (true, Some(value)) = (typed(id), value) {
            flags.push(format!("{flag} {value}"));
        }
    }
    flags.join(" ")
}

async fn command(command: Command, env: &Env) -> Result<Report, CtlError> {
    match command {
        Command::Trigger { collections } => runs::trigger(env, &collections).await,
        Command::Backfill {
            collections,
            start,
            end,
            database,
            prefix,
            dry_run,
            force,
        } => {
            runs::backfill(
                env,
                runs::BackfillArgs {
                    collections: &collections,
                    start: &start,
                    end: &end,
                    database: database.as_deref(),
                    prefix: prefix.as_deref(),
                    dry_run,
                    force,
                },
            )
            .await
        }
        Command::Status {
            run,
            collection,
            since,
            limit,
        } => {
            status::status(
                env,
                run.as_deref(),
                collection.as_deref(),
                since.as_deref(),
                limit,
            )
            .await
        }
        Command::Ack {
            run,
            collections,
            reason,
            by,
        } => ack::ack(env, &run, &collections, &reason, by.as_deref()).await,
        Command::Replay {
            queue,
            queue_flag,
            file,
            stdin,
        } => {
            let queue = queue.or(queue_flag).unwrap_or_default();
            let body = match (file, stdin) {
                (Some(path), _) => std::fs::read_to_string(&path).map_err(|e| CtlError::Read {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?,
                (None, true) => {
                    let mut body = String::new();
                    std::io::stdin()
                        .read_to_string(&mut body)
                        .map_err(|e| CtlError::Read {
                            path: "standard input".into(),
                            reason: e.to_string(),
                        })?;
                    body
                }
                (None, false) => {
                    return Err(CtlError::Invalid(
                        "give the message with --file PATH or --stdin".into(),
                    ));
                }
            };
            replay::replay(env, &queue, &body).await
        }
        Command::Dlq(DlqCommand::List) => dlq::list(env).await,
        Command::Dlq(DlqCommand::Peek { queue, count }) => dlq::peek(env, &queue, count).await,
        Command::Dlq(DlqCommand::Redrive {
            queue,
            max,
            dry_run,
        }) => {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    flag.store(true, Ordering::SeqCst);
                }
            });
            dlq::redrive(env, &queue, max, dry_run, &stop).await
        }
        Command::Cluster(ClusterCommand::Start { params }) => {
            cluster::start(env, params.as_deref()).await
        }
        Command::Cluster(ClusterCommand::Stop { cluster_id }) => {
            cluster::stop(env, &cluster_id).await
        }
        Command::Reap {
            cluster_id,
            dry_run,
            hbase_root,
        } => reap::reap(env, &cluster_id, dry_run, hbase_root.as_deref()).await,
        Command::Migrate(MigrateCommand::Check { database }) => {
            migrate::check(env, database.as_deref()).await
        }
        Command::Migrate(MigrateCommand::RegisterLegacy {
            prefix,
            database,
            include_incomplete,
            dry_run,
        }) => {
            migrate::register_legacy(
                env,
                migrate::LegacyArgs {
                    prefix: &prefix,
                    database: database.as_deref(),
                    include_incomplete,
                    dry_run,
                },
            )
            .await
        }
        Command::Local(LocalCommand::Demo { .. }) => {
            Err(CtlError::Other("`local demo` runs without a stack".into()))
        }
        Command::Completions { .. } => Err(CtlError::Other("`completions` needs no stack".into())),
    }
}

/// The shell completion script, from the CLI's own definition.
fn completions(shell: clap_complete::Shell) -> Report {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "intradayctl", &mut out);
    let script = String::from_utf8_lossy(&out).into_owned();
    Report {
        notes: vec![script.clone()],
        json: serde_json::Value::String(script),
        ..Report::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_repeat_the_flags_that_chose_the_stack() {
        let cli = Cli::parse_with([
            "intradayctl",
            "--stack",
            "intraday-test",
            "--endpoint-url",
            "http://127.0.0.1:5000",
            "status",
            "--region",
            "eu-west-2",
        ]);
        assert_eq!(
            context_flags(&cli),
            "--stack intraday-test --endpoint-url http://127.0.0.1:5000 --region eu-west-2"
        );
    }

    #[test]
    fn hints_leave_out_what_came_from_the_environment() {
        let mut cli = Cli::parse_with(["intradayctl", "--region", "eu-west-1", "status"]);
        // As if AWS_ENDPOINT_URL and INTRADAY_STACK had set these.
        cli.endpoint_url = Some("http://127.0.0.1:5000".into());
        cli.stack = "intraday-test".into();
        assert_eq!(context_flags(&cli), "--region eu-west-1");
    }
}
