//! `intradayctl local demo`: the whole pipeline on this machine, against moto server on
//! loopback. It deploys infra/template.yaml through CloudFormation, seeds a KMS key, the
//! collections secret (in the original's base64 Python-literal format) and a DKS on
//! loopback, runs every service's real handler on its queue with the local poller, stands in
//! for EMR, and runs two scheduled-like runs end to end.

pub mod enforce;
pub mod moto;
mod packaged;
pub mod roles;
mod standin;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use intraday_aws::{
    Alerts, Aws, AwsSettings, Bus, Catalog, Emr, JobStore, Objects, Queues, Secrets, Stacks,
};
use intraday_core::{CorrelationId, JobStatus, S3Uri, WaitPolicy};
use intraday_events::{MESSAGE_VERSION, Manifest, Message, RunRequested, Trigger};
use intraday_extractor::loopback_dks::LoopbackDks;
use intraday_extractor::synth::SynthKey;
use intraday_runtime::{HandlerFuture, MetricsSink, Poller, Telemetry};
use serde_json::json;
use tokio::sync::watch;

use crate::CtlError;
use crate::cli::DemoEngine;
use crate::output::Report;

const REGION: &str = "eu-west-2";
const SECRET: &str = "{'collections_all': {'db.core.claimant': {'db': 'core', 'table': 'claimant', 'pii': 'true'}, 'db.core.contract': {'db': 'core', 'table': 'contract', 'pii': 'true'}, 'db.agent.agentToDo': {'db': 'agent', 'table': 'agentToDo', 'pii': 'false'}}}";

pub struct DemoOptions {
    pub endpoint_url: Option<String>,
    pub timeout: Duration,
    /// Run the packaged zips in this directory instead of the built-in handlers.
    pub lambda_dir: Option<PathBuf>,
    /// The extractor the EMR stand-in runs; by default the one beside intradayctl.
    pub extractor: Option<PathBuf>,
    /// moto server checks every request against IAM, and each service runs under its role.
    pub enforce_iam: bool,
    /// Where the step runs the extraction: the extractor itself, or the launcher's Spark
    /// step on a local Spark.
    pub engine: DemoEngine,
    /// The `spark-submit` that `DemoEngine::Spark` runs.
    pub spark_submit: PathBuf,
}

/// One run's outcome per collection, for the summary.
struct Row {
    run: String,
    collection: String,
    status: JobStatus,
    window: String,
    records: String,
    files: String,
    table: String,
    view: String,
}

pub async fn demo(options: DemoOptions) -> Result<Report, CtlError> {
    let started = Instant::now();
    // Progress goes to stderr: stdout holds only the result, so `-o json | jq` works.
    let say = |text: String| eprintln!("[{:>5.1}s] {text}", started.elapsed().as_secs_f64());
    // Checked before anything starts: a Spark engine without Spark would fail every run's step.
    let spark = match options.engine {
        DemoEngine::SingleNode => None,
        DemoEngine::Spark => Some(local_spark(&options.spark_submit)?),
    };
    let hbase = hbase_standin();
    if spark.is_some() && hbase.is_none() {
        return Err(CtlError::Other(format!(
            "--engine spark: the Spark tasks scan HBase through the stand-in `hbase` command, and there is none beside intradayctl ({}); build it with `cargo build -p intraday-testkit --bins` (ci/setup.sh does)",
            intraday_testkit::hbase::BINARY
        )));
    }

    // Under --enforce-iam the demo deploys and seeds as a user allowed everything: one it
    // makes with the free requests of the moto server it starts, or, on a server someone
    // else started with IAM enforced, whoever the environment's credentials name.
    let (_moto, endpoint, admin) = match options.endpoint_url {
        Some(url) => (None, url, None),
        None => {
            let moto = moto::start(options.enforce_iam.then_some(enforce::FREE_REQUESTS)).await?;
            let endpoint = moto.endpoint.clone();
            let admin = match options.enforce_iam {
                true => Some(enforce::admin(&endpoint, REGION).await?),
                false => None,
            };
            (Some(moto), endpoint, admin)
        }
    };
    say(format!("moto server on {endpoint}"));
    if options.enforce_iam {
        say("moto server checks every request against IAM; the demo deploys and seeds as a user allowed everything".into());
    }
    // The demo's own calls (deploying, seeding, watching) ride out a failed request as the
    // CLI does; the services get the SDK's standard retries, as in Lambda, and rely on their
    // queues to redeliver.
    let mut own = AwsSettings {
        adaptive_retries: true,
        ..AwsSettings::emulator(&endpoint, REGION)
    };
    own.static_credentials = match (&admin, options.enforce_iam) {
        (Some(admin), _) => Some(admin.clone()),
        // The caller's own, from the environment: moto knows no `test` key when it enforces.
        (None, true) => None,
        (None, false) => own.static_credentials,
    };
    let aws = own.load().await;

    // The stack, from the template, with names of its own.
    let prefix = format!(
        "intraday-demo-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let secret_name = format!("/{prefix}/collections");
    let hbase_bucket = format!("{prefix}-hbase");
    let hbase_root = S3Uri::parse(&format!("s3://{hbase_bucket}/hbase"))?;
    let template = include_str!("../../../../infra/template.yaml");
    let table = format!("{prefix}-jobs");
    // Demos sharing one moto server share its EMR and its Glue catalog: each names its runs
    // and its database after itself, and its EMR stand-in takes only its own clusters.
    let demo_id = prefix.trim_start_matches("intraday-demo-").to_owned();
    let database = intraday_core::DatabaseName::new(format!("intraday_demo_{demo_id}"))?;
    // The launcher's cluster settings reach it as in AWS: the stack's EmrParams.
    let emr_params = emr_params(options.engine)?;
    let extractor = match &options.extractor {
        Some(path) if path.is_file() => path.clone(),
        Some(path) => {
            return Err(CtlError::Other(format!(
                "--extractor {}: no such file",
                path.display()
            )));
        }
        None => extractor_binary()?,
    };
    let code_bucket = match &options.lambda_dir {
        Some(dir) => {
            let bucket = format!("{prefix}-code");
            packaged::upload(&aws, &bucket, REGION, dir).await?;
            say(format!(
                "uploaded the Lambda zips in {} to s3://{bucket}/{}",
                dir.display(),
                packaged::CODE_PREFIX
            ));
            bucket
        }
        // The roles exist only with the functions; under --enforce-iam the services run
        // under them, so the functions are made too, from code no one runs (the queues are
        // not mapped to them: ProcessQueues=false).
        None if options.enforce_iam => {
            let bucket = format!("{prefix}-code");
            packaged::upload_unrun(&aws, &bucket, REGION).await?;
            bucket
        }
        None => String::new(),
    };
    let deployed = Stacks::new(aws.cloudformation())
        .create(
            &prefix,
            template,
            &[
                ("Prefix", &prefix),
                ("JobTableName", &table),
                ("CollectionsSecretName", &secret_name),
                ("GlueDatabaseName", database.as_str()),
                ("HBaseRootS3Uri", &hbase_root.to_string()),
                ("EnableSchedules", "false"),
                ("EnforceTls", "false"),
                ("CodeBucket", &code_bucket),
                // Functions are fed by the demo, not by moto's own (Docker-based) invoker.
                ("ProcessQueues", "false"),
                ("EmrParams", &emr_params),
            ],
            Duration::from_secs(60),
        )
        .await?;
    let out = |name: &str| {
        deployed
            .outputs
            .get(name)
            .cloned()
            .ok_or_else(|| CtlError::MissingOutput {
                stack: prefix.clone(),
                output: name.into(),
            })
    };
    say(format!(
        "stack {prefix} deployed from infra/template.yaml ({})",
        deployed.status
    ));

    // One set of clients per service. Under --enforce-iam each signs with a session of the
    // role the stack made for it; otherwise with its own access key id (`intraday-<service>`),
    // so whatever stands between them and the emulator (a fault proxy) can tell them apart.
    // Under --enforce-iam the step runs as EMR runs it, with the nodes' role.
    let (sessions, step_credentials) = match options.enforce_iam {
        true => {
            let template = roles::template(template).map_err(CtlError::Other)?;
            let sessions =
                enforce::assume_service_roles(&aws, &template, |s| format!("{prefix}-{s}-role"))
                    .await?;
            let nodes = enforce::assume(
                &aws,
                &template,
                "EmrInstanceRole",
                &out("EmrInstanceRoleName")?,
                "emr-nodes",
            )
            .await?;
            say(format!(
                "each service runs under a session of its own role ({} roles assumed), the extractor under the EMR nodes' role",
                sessions.len()
            ));
            (sessions, Some(nodes))
        }
        false => (
            BTreeMap::new(),
            Some(intraday_aws::static_credentials("test", "test", None)),
        ),
    };
    let client_of = |service: &'static str| {
        let mut settings = AwsSettings::emulator(&endpoint, REGION);
        settings.static_credentials = Some(sessions.get(service).cloned().unwrap_or_else(|| {
            intraday_aws::static_credentials(&format!("intraday-{service}"), "test", None)
        }));
        async move { settings.load().await }
    };
    let (for_scheduler, for_launcher, for_monitor, for_tables, for_reaper) = tokio::join!(
        client_of("scheduler"),
        client_of("launcher"),
        client_of("monitor"),
        client_of("table-builder"),
        client_of("reaper"),
    );

    // What the emulator skips from the template, and the data HBase would hold.
    let secrets = Secrets::new(aws.secrets());
    secrets
        .put(
            &secret_name,
            &base64::engine::general_purpose::STANDARD.encode(SECRET),
        )
        .await?;
    create_bucket(&aws, &hbase_bucket, REGION, "the HBase root bucket").await?;
    let keys = seed_keys(&aws).await?;
    let dks = LoopbackDks::start()
        .await
        .map_err(|e| CtlError::Other(e.to_string()))?;
    for key in &keys {
        dks.add_key(&key.encrypted_key, &key.plaintext);
    }
    say(format!(
        "seeded a KMS key, {} data keys, the collections secret and a DKS on {}",
        keys.len(),
        dks.url()
    ));

    let bucket = out("OutputBucketName")?;
    let watch = JobStore::new(aws.dynamodb(), table.clone());
    let own_objects = Objects::new(aws.s3());
    let own_queues = Queues::new(aws.sqs());
    let topic = out("AlertsTopicArn")?;
    let store = |aws: &Aws| JobStore::new(aws.dynamodb(), table.clone());
    let alerts = |aws: &Aws| Alerts::new(aws.sns(), topic.clone());
    // The variables the template gives the launcher's function, read the same way.
    let launcher_vars = BTreeMap::from([
        ("INTRADAY_EMR_PARAMS", emr_params.clone()),
        ("INTRADAY_HBASE_ROOT", hbase_root.to_string()),
        ("INTRADAY_EMR_SERVICE_ROLE", out("EmrServiceRoleName")?),
        (
            "INTRADAY_EMR_INSTANCE_PROFILE",
            out("EmrInstanceProfileName")?,
        ),
        (
            "INTRADAY_EMR_SECURITY_CONFIGURATION",
            out("EmrSecurityConfigurationName")?,
        ),
    ]);
    let launcher_template =
        intraday_launcher::config::cluster_template(|name| launcher_vars.get(name).cloned())
            .map_err(|e| CtlError::Other(e.to_string()))?;

    let scheduler = intraday_scheduler::Ctx {
        store: store(&for_scheduler),
        secrets: Secrets::new(for_scheduler.secrets()),
        queues: Queues::new(for_scheduler.sqs()),
        alerts: alerts(&for_scheduler),
        collections_secret: secret_name.clone(),
        scheduler_queue_url: out("SchedulerQueueUrl")?,
        launcher_queue_url: out("LauncherQueueUrl")?,
        output: S3Uri::new(&bucket, "data/")?,
        database: database.clone(),
        backfill_database: intraday_core::DatabaseName::new("intraday_backfill")?,
        format: Default::default(),
        policy: WaitPolicy {
            max_wait: Duration::from_secs(60),
            step: Duration::from_secs(5),
        },
        collections: Default::default(),
    };
    let launcher = intraday_launcher::Ctx {
        store: store(&for_launcher),
        emr: Emr::new(for_launcher.emr()),
        alerts: alerts(&for_launcher),
        template: launcher_template,
        claim_timeout: Duration::from_secs(120),
    };
    let monitor = intraday_monitor::Ctx {
        store: store(&for_monitor),
        emr: Emr::new(for_monitor.emr()),
        objects: Objects::new(for_monitor.s3()),
        queues: Queues::new(for_monitor.sqs()),
        alerts: alerts(&for_monitor),
        tables_queue_url: out("TablesQueueUrl")?,
        sweep: Default::default(),
    };
    let tables = intraday_table_builder::Ctx {
        store: store(&for_tables),
        catalog: Catalog::new(for_tables.glue()),
        alerts: alerts(&for_tables),
        // stdout holds the demo's report.
        metrics: MetricsSink::Discard,
    };
    let reaper = intraday_reaper::Ctx {
        emr: Emr::new(for_reaper.emr()),
        objects: Objects::new(for_reaper.s3()),
        hbase_root: hbase_root.clone(),
    };

    let workdir = std::env::temp_dir().join(&prefix);
    // The stand-in plays EMR itself, whose events do not depend on our clients' luck: it
    // uses the demo's own patient clients.
    let standin = standin::StandIn {
        emr: Emr::new(aws.emr()),
        bus: Bus::new(aws.eventbridge()),
        objects: own_objects.clone(),
        hbase_root: hbase_root.clone(),
        keys,
        extractor,
        dks_url: dks.url(),
        endpoint: endpoint.clone(),
        region: REGION.into(),
        workdir: workdir.clone(),
        runs_suffix: format!("-{demo_id}"),
        credentials: step_credentials,
        hbase,
        spark,
    };

    if let Some(spark) = &standin.spark {
        say(format!(
            "the step is the launcher's Spark application, submitted with {} to a local Spark (local[2,2])",
            spark.submit.display()
        ));
    }
    say(match &standin.hbase {
        Some(hbase) => format!(
            "the step scans HBase through the stand-in `hbase` command ({}), {}",
            hbase.display(),
            match standin.spark {
                Some(_) => "a Spark task per range, two at once",
                None => "two range scans at once",
            }
        ),
        None => {
            "the step reads saved scans (no stand-in `hbase` command beside intradayctl)".into()
        }
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each poller receives with its service's clients, as the event source mapping does with
    // the function's role.
    let poll = |aws: &Aws, url: String| {
        let mut poller = Poller::new(Queues::new(aws.sqs()), url);
        poller.wait = Duration::from_secs(1);
        poller
    };
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (p_sched, p_launch, p_mon, p_tab, p_reap) = (
        poll(&for_scheduler, out("SchedulerQueueUrl")?),
        poll(&for_launcher, out("LauncherQueueUrl")?),
        poll(&for_monitor, out("MonitorQueueUrl")?),
        poll(&for_tables, out("TablesQueueUrl")?),
        poll(&for_reaper, out("ReaperQueueUrl")?),
    );
    let t = |name| Telemetry::new(name, MetricsSink::Discard);
    let (ts, tl, tm, tt, tr) = (
        t("scheduler"),
        t("launcher"),
        t("monitor"),
        t("table-builder"),
        t("reaper"),
    );
    let shipped = match &options.lambda_dir {
        Some(dir) => {
            let out_ref = |name: &str| out(name);
            let mut p =
                packaged::Packaged::start(&aws, &prefix, dir, &endpoint, REGION, &out_ref).await?;
            p.send_malformed().await?;
            say(format!(
                "started each packaged bootstrap from {} with its function's environment; one malformed message waits on every queue",
                dir.display()
            ));
            Some(p)
        }
        None => None,
    };
    let services = async {
        match &shipped {
            Some(p) => {
                tokio::join!(p.run(stop_rx.clone()), standin.run(stop_rx.clone()));
            }
            None => {
                tokio::join!(
                    p_sched.run(
                        &scheduler,
                        &intraday_scheduler::handler,
                        &ts,
                        stopped(stop_rx.clone())
                    ),
                    p_launch.run(
                        &launcher,
                        &intraday_launcher::handler,
                        &tl,
                        stopped(stop_rx.clone())
                    ),
                    p_mon.run(
                        &monitor,
                        &intraday_monitor::handler,
                        &tm,
                        stopped(stop_rx.clone())
                    ),
                    p_tab.run(
                        &tables,
                        &table_builder_handler,
                        &tt,
                        stopped(stop_rx.clone())
                    ),
                    p_reap.run(
                        &reaper,
                        &intraday_reaper::handler,
                        &tr,
                        stopped(stop_rx.clone())
                    ),
                    standin.run(stop_rx.clone()),
                );
            }
        }
    };
    say("scheduler, launcher, monitor, table builder and reaper are polling their queues; the EMR stand-in is watching for clusters".into());

    let flow = async {
        let mut rows = Vec::new();
        for n in 1..=2 {
            let run = trigger(&own_queues, &out("SchedulerQueueUrl")?, n, &demo_id).await?;
            say(format!("run {n}: requested {run}"));
            let settled = follow(&watch, &run, options.timeout, &say).await?;
            rows.extend(
                summarise(
                    &aws,
                    &own_objects,
                    &bucket,
                    database.as_str(),
                    &run,
                    &settled,
                )
                .await?,
            );
            wait_for_reaper(&own_objects, &hbase_root, &say).await;
        }
        // The malformed messages: each back as a batch item failure, then in its DLQ. The
        // functions keep polling meanwhile, so the redeliveries happen.
        let checked = match &shipped {
            Some(p) => {
                let checked = p.verify(Duration::from_secs(30)).await?;
                say(format!(
                    "each packaged function answered its malformed message as a batch item failure, and SQS moved it to the dead-letter queue ({} queues)",
                    checked.len()
                ));
                checked
            }
            None => Vec::new(),
        };
        Ok::<_, CtlError>((rows, checked))
    };
    let rows = tokio::select! {
        rows = flow => rows,
        () = services => Err(CtlError::Other("the services stopped early".into())),
    };
    let _ = std::fs::remove_dir_all(&workdir);
    let (rows, shipped_report) = rows?;
    let _ = stop_tx.send(true);

    let mut report = Report::new(&[
        "RUN",
        "COLLECTION",
        "STATUS",
        "WINDOW",
        "RECORDS",
        "FILES",
        "TABLE",
        "VIEW",
    ]);
    report.title = Some(format!(
        "Intraday local demo, stack {prefix}, engine {}, finished in {:.1} s",
        options.engine.as_str(),
        started.elapsed().as_secs_f64()
    ));
    let failed = rows
        .iter()
        .filter(|r| r.status != JobStatus::EmrCompleted)
        .count();
    report.json = json!({"stack": prefix, "engine": options.engine.as_str(), "packaged": shipped_report, "runs": rows.iter().map(|r| json!({
        "run": r.run, "collection": r.collection, "status": r.status, "window": r.window,
        "records": r.records, "files": r.files, "table": r.table, "view": r.view})).collect::<Vec<_>>()});
    for r in rows {
        report.rows.push(vec![
            r.run,
            r.collection,
            r.status.to_string(),
            r.window,
            r.records,
            r.files,
            r.table,
            r.view,
        ]);
    }
    if failed > 0 {
        return Err(CtlError::Other(format!(
            "{}\n{failed} collection(s) did not complete",
            report.render(crate::output::Format::Table)
        )));
    }
    Ok(report)
}

/// Creates one of the demo's buckets. Repeat: when the answer is lost the SDK sends it again
/// and S3 answers `BucketAlreadyOwnedByYou`, which is success here (the name is the demo's own).
pub(crate) async fn create_bucket(
    aws: &Aws,
    bucket: &str,
    region: &str,
    what: &str,
) -> Result<(), CtlError> {
    match aws
        .s3()
        .create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(aws_sdk_s3_location(region))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
        {
            Ok(())
        }
        Err(e) => Err(CtlError::Other(format!(
            "creating {what} {bucket}: {}",
            intraday_aws::causes(&e)
        ))),
    }
}

fn aws_sdk_s3_location(region: &str) -> aws_sdk_s3::types::CreateBucketConfiguration {
    aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
        .build()
}

fn table_builder_handler(
    message: intraday_runtime::Message,
    ctx: &intraday_table_builder::Ctx,
) -> HandlerFuture<'_> {
    intraday_table_builder::handler(message, ctx)
}

/// `name`, an executable beside this one (`target/<profile>/` or `dist/bin/`).
fn beside_intradayctl(name: &str) -> Result<PathBuf, CtlError> {
    let here = std::env::current_exe().map_err(|e| CtlError::Other(e.to_string()))?;
    Ok(here.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX)))
}

/// The stack's EmrParams: infra/emr/params/local.json, with the engine asked for.
fn emr_params(engine: DemoEngine) -> Result<String, CtlError> {
    let source = "infra/emr/params/local.json";
    let mut params: serde_json::Value =
        serde_json::from_str(include_str!("../../../../infra/emr/params/local.json"))
            .map_err(|e| CtlError::Other(format!("{source} is not JSON: {e}")))?;
    let Some(object) = params.as_object_mut() else {
        return Err(CtlError::Other(format!("{source}: not a JSON object")));
    };
    object.insert("engine".into(), json!(engine.as_str()));
    Ok(params.to_string())
}

/// The Spark the demo's step is submitted to: `spark_submit` (a path, or a name looked for
/// on PATH) and the Spark driver as the project ships it.
fn local_spark(spark_submit: &Path) -> Result<standin::LocalSpark, CtlError> {
    let found = if spark_submit.components().count() > 1 {
        spark_submit.is_file().then(|| spark_submit.to_path_buf())
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(spark_submit))
                .find(|candidate| candidate.is_file())
        })
    };
    let Some(submit) = found else {
        return Err(CtlError::Other(format!(
            "--engine spark: no `{}` found; install pyspark and Java 17 (`source ci/tools.sh && intraday_spark_tools` puts pyspark's spark-submit on PATH), or pass --spark-submit PATH",
            spark_submit.display()
        )));
    };
    Ok(standin::LocalSpark {
        submit,
        driver: include_str!("../../../extractor/spark/intraday_spark.py"),
    })
}

/// The test kit's stand-in `hbase` command beside intradayctl, when it was built (ci/setup.sh
/// builds it; a packaged intradayctl has none, and the stand-in EMR then saves scans).
fn hbase_standin() -> Option<PathBuf> {
    beside_intradayctl(intraday_testkit::hbase::BINARY)
        .ok()
        .filter(|path| path.is_file())
}

/// The extractor binary beside this one, as `ci/setup.sh` builds it.
fn extractor_binary() -> Result<PathBuf, CtlError> {
    let path = beside_intradayctl("intraday-extractor")?;
    if path.is_file() {
        Ok(path)
    } else {
        Err(CtlError::Other(format!(
            "the extractor binary is not at {}; build it with `cargo build -p intraday-extractor` (ci/setup.sh does)",
            path.display()
        )))
    }
}

/// Data keys wrapped by a KMS key, as a producer would make them; the DKS stand-in learns
/// their plaintext.
async fn seed_keys(aws: &Aws) -> Result<Vec<SynthKey>, CtlError> {
    let kms = aws_sdk_kms::Client::new(&aws.sdk);
    let key = kms
        .create_key()
        .description("intraday demo master key")
        .send()
        .await
        .map_err(|e| CtlError::Other(format!("KMS CreateKey: {e}")))?;
    let key_id = key
        .key_metadata()
        .map(|m| m.key_id().to_owned())
        .unwrap_or_default();
    let mut keys = Vec::new();
    for _ in 0..3 {
        let data = kms
            .generate_data_key()
            .key_id(&key_id)
            .key_spec(aws_sdk_kms::types::DataKeySpec::Aes128)
            .send()
            .await
            .map_err(|e| CtlError::Other(format!("KMS GenerateDataKey: {e}")))?;
        let plaintext: [u8; 16] = data
            .plaintext()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default()
            .try_into()
            .map_err(|_| CtlError::Other("KMS returned a data key that is not 16 bytes".into()))?;
        let encrypted = data
            .ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        keys.push(SynthKey {
            key_id: key_id.clone(),
            encrypted_key: base64::engine::general_purpose::STANDARD.encode(encrypted),
            plaintext,
        });
    }
    Ok(keys)
}

async fn trigger(
    queues: &Queues,
    url: &str,
    n: u32,
    demo_id: &str,
) -> Result<CorrelationId, CtlError> {
    let now = intraday_aws::jobs::now_ms();
    let run = CorrelationId::new(format!(
        "demo-{n}-{}-{demo_id}",
        intraday_core::run_folder(now)?
    ))?;
    let request = RunRequested {
        version: MESSAGE_VERSION,
        correlation_id: run.clone(),
        trigger: Trigger::Manual,
        trigger_time_ms: now,
        collections: None,
        backfill: None,
        attempt: 1,
        first_requested_ms: now,
    };
    queues
        .send(url, &Message::RunRequested(request).to_body(), None)
        .await?;
    Ok(run)
}

/// Prints each status change until every item has settled; returns the final items.
async fn follow(
    store: &JobStore,
    run: &CorrelationId,
    timeout: Duration,
    say: &impl Fn(String),
) -> Result<Vec<intraday_core::JobRecord>, CtlError> {
    let deadline = Instant::now() + timeout;
    let mut last: BTreeMap<String, JobStatus> = BTreeMap::new();
    let mut failed_reads = 0;
    loop {
        // A read that fails after the SDK's own retries is still transient for a watcher:
        // a few in a row are waited out, then the run is reported as it is.
        let jobs = match store.run(run).await {
            Ok(jobs) => {
                failed_reads = 0;
                jobs
            }
            Err(e) if e.is_retryable() && failed_reads < 5 => {
                failed_reads += 1;
                tracing::debug!(error = %e, failed_reads, "reading the run failed; trying again");
                tokio::time::sleep(Duration::from_millis(500 * failed_reads)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for job in &jobs {
            if last.get(&job.collection.name()) != Some(&job.status) {
                say(format!("  {} {}: {}", run, job.collection, job.status));
                last.insert(job.collection.name(), job.status);
            }
        }
        let settled = !jobs.is_empty() && jobs.iter().all(|j| !(j.status.is_active()));
        if settled {
            return Ok(jobs);
        }
        if Instant::now() > deadline {
            return Err(CtlError::Other(format!(
                "run {run} did not settle within {} s; see `intradayctl status --run {run}`",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn summarise(
    aws: &Aws,
    objects: &Objects,
    bucket: &str,
    database: &str,
    run: &CorrelationId,
    jobs: &[intraday_core::JobRecord],
) -> Result<Vec<Row>, CtlError> {
    let manifest = match objects
        .get(&S3Uri::new(bucket, &format!("data/_manifests/{run}.json"))?)
        .await
    {
        Ok(bytes) => Manifest::parse(&String::from_utf8_lossy(&bytes)).ok(),
        Err(_) => None,
    };
    let catalog = Catalog::new(aws.glue());
    let mut rows = Vec::new();
    for job in jobs {
        let entry = manifest.as_ref().and_then(|m| {
            m.collections
                .iter()
                .find(|c| c.collection == job.collection)
        });
        let table = job.collection.hive_table();
        let view = job.collection.latest_view();
        rows.push(Row {
            run: run.to_string(),
            collection: job.collection.name(),
            status: job.status,
            window: match (job.processed_data_start, job.window_end) {
                (Some(s), Some(e)) => crate::commands::show_window(s, e),
                _ => "-".into(),
            },
            records: entry.map_or("-".into(), |e| e.records.to_string()),
            files: entry.map_or("-".into(), |e| e.files.len().to_string()),
            table: registered(&catalog, database, &table).await,
            view: registered(&catalog, database, &view).await,
        });
    }
    Ok(rows)
}

/// `intraday.<name>` when the catalog has it, else `-`.
async fn registered(catalog: &Catalog, database: &str, name: &str) -> String {
    match catalog.get_table(database, name).await {
        Ok(Some(_)) => format!("{database}.{name}"),
        _ => "-".to_owned(),
    }
}

/// The reaper removes each replica's metadata after its cluster terminates.
async fn wait_for_reaper(objects: &Objects, root: &S3Uri, say: &impl Fn(String)) {
    let prefix = match root.join("data/hbase/") {
        Ok(p) => p,
        Err(_) => return,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match objects.list(&prefix).await {
            Ok(left) if left.is_empty() => {
                say("  the reaper removed the replica's meta_<clusterId>/ folder".into());
                return;
            }
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
    say("  replica metadata is still there after 20 s; see the reaper's dead-letter queue".into());
}
