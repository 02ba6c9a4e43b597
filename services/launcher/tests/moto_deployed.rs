//! The launcher as deployed: infra/template.yaml on moto server with production-like EMR
//! settings (infra/emr/params/production.json through the stack's `EmrParams`), the launcher
//! binary run as Lambda runs it (the Runtime API stand-in, the environment the template
//! gave the function), and the cluster it starts read back from EMR: every setting, the
//! bootstrap action and the step's arguments included.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_emr::types::InstanceGroupType;
use intraday_aws::{Functions, JobStore, Stacks};
use intraday_core::{CorrelationId, JobRecord, JobStatus};
use intraday_events::{LaunchRequested, Message as Event};
use intraday_launcher::cluster::TAG_CORRELATION_ID;
use intraday_testkit as kit;
use intraday_testkit::lambda::{self, Function, FunctionConfig, Outcome};
use serde_json::Value;

const SUM: &str = "5e1f0c3a9d7b2e4f6a8c0e1d3b5f7a9c2e4d6f8a0b1c3e5d7f9a2b4c6d8e0f1a";
const DRIVER_SUM: &str = "a1f0e8d6c4b2a0f9e7d5c3b1a9f8e6d4c2b0a1f3e5d7c9b8a6f4e2d0c1b3a5f7";

fn production_params() -> String {
    let text = include_str!("../../../infra/emr/params/production.json");
    let mut params: serde_json::Map<String, Value> =
        serde_json::from_str(text).expect("production.json is an object");
    params.insert("extractor_sha256".into(), SUM.into());
    params.insert("spark_driver_sha256".into(), DRIVER_SUM.into());
    Value::Object(params).to_string()
}

fn launch_for(run: &CorrelationId) -> LaunchRequested {
    let text = include_str!("../../../events/samples/launch-requested.json");
    let Event::LaunchRequested(mut launch) = Event::parse(text).expect("sample") else {
        panic!("the sample is a LaunchRequested");
    };
    launch.correlation_id = run.clone();
    launch
}

#[tokio::test]
async fn moto_the_deployed_launcher_starts_a_cluster_with_every_production_setting() {
    let aws = kit::aws().await;
    let prefix = kit::unique("itd");
    let code = kit::bucket(&aws).await;
    let work = std::env::temp_dir().join(kit::unique("launcher-zip"));
    std::fs::create_dir_all(&work).expect("work dir");
    let zip = work.join("launcher.zip");
    lambda::zip_bootstrap(env!("CARGO_BIN_EXE_launcher").as_ref(), &zip).expect("zip");
    let bytes = std::fs::read(&zip).expect("read zip");
    // The stack makes all five functions; this test runs the launcher's, so each key holds it.
    for service in lambda::SERVICES {
        aws.s3()
            .put_object()
            .bucket(&code)
            .key(format!("lambda/{service}.zip"))
            .body(bytes.clone().into())
            .send()
            .await
            .expect("upload zip");
    }

    let params = production_params();
    let root = "s3://ingest-hbase-prod/hbase";
    let logs = "s3://intraday-logs-123456789012-eu-west-2/emr/";
    let deployed = Stacks::new(aws.cloudformation())
        .create(
            &prefix,
            include_str!("../../../infra/template.yaml"),
            &[
                ("Prefix", &prefix),
                ("JobTableName", &format!("{prefix}-jobs")),
                ("CollectionsSecretName", &format!("/{prefix}/collections")),
                ("HBaseRootS3Uri", root),
                ("EnableSchedules", "false"),
                ("EnforceTls", "false"),
                ("CodeBucket", &code),
                ("ProcessQueues", "false"),
                ("EmrParams", &params),
                ("EmrLogUri", logs),
                (
                    "EmrArtifactsS3Uri",
                    "s3://intraday-artifacts-123456789012-eu-west-2/emr/",
                ),
            ],
            Duration::from_secs(60),
        )
        .await
        .expect("deploy the template");

    let function = Functions::new(aws.lambda())
        .configuration(&format!("{prefix}-launcher"))
        .await
        .expect("the launcher's function");
    assert_eq!(function.runtime, "provided.al2023");
    assert_eq!(function.handler, "bootstrap");
    assert_eq!(function.architectures, ["x86_64"], "the template's default");
    assert_eq!(function.environment["INTRADAY_EMR_PARAMS"], params);
    assert_eq!(function.environment["INTRADAY_HBASE_ROOT"], root);

    // The run's items, as the scheduler writes them.
    let table = deployed.outputs["JobTableName"].clone();
    let store = JobStore::new(aws.dynamodb(), table);
    let run = CorrelationId::new(kit::unique("run")).expect("id");
    let launch = launch_for(&run);
    for c in &launch.collections {
        let job = JobRecord::new(
            run.clone(),
            c.collection.clone(),
            JobStatus::LambdaTriggered,
            launch.trigger_time_ms,
        );
        assert!(store.create(&job).await.expect("item"));
    }

    let mut started = Function::start(
        &zip,
        FunctionConfig::from(&function),
        kit::REGION,
        &lambda::emulator_env(kit::moto()),
    )
    .await
    .expect("start the launcher's bootstrap");
    let queue_arn = kit::queue_arn(&aws, &deployed.outputs["LauncherQueueUrl"]).await;
    let body = Event::LaunchRequested(launch.clone()).to_body();
    let event = lambda::sqs_event(
        &queue_arn,
        kit::REGION,
        &[
            ("good", &body),
            ("malformed", "{\"type\": \"LaunchRequested\""),
        ],
    );
    let outcome = started
        .api
        .invoke(event, Duration::from_secs(30))
        .await
        .expect("an answer");
    let Outcome::Response(answer) = outcome else {
        panic!("the batch failed as a whole: {outcome:?}");
    };
    assert_eq!(
        lambda::batch_item_failures(&answer),
        ["malformed"],
        "{answer}"
    );
    assert!(started.exited().is_none(), "the runtime keeps serving");

    // The cluster, read back from EMR.
    let emr = aws_sdk_emr::Client::new(&aws.sdk);
    let jobs = store.run(&run).await.expect("items");
    let cluster_id = jobs[0]
        .emr_cluster_id
        .clone()
        .expect("the cluster is recorded");
    let cluster = emr
        .describe_cluster()
        .cluster_id(&cluster_id)
        .send()
        .await
        .expect("describe")
        .cluster
        .expect("cluster");
    assert_eq!(cluster.release_label(), Some("emr-7.12.0"));
    assert_eq!(cluster.custom_ami_id(), Some("ami-0a1b2c3d4e5f60719"));
    // The roles, profile and security configuration the stack made, and its log prefix.
    assert_eq!(
        cluster.security_configuration(),
        Some(deployed.outputs["EmrSecurityConfigurationName"].as_str())
    );
    assert_eq!(cluster.log_uri(), Some(logs));
    assert_eq!(
        cluster.service_role(),
        Some(deployed.outputs["EmrServiceRoleName"].as_str())
    );
    let ec2 = cluster.ec2_instance_attributes().expect("EC2 attributes");
    assert_eq!(ec2.ec2_subnet_id(), Some("subnet-0a1b2c3d4e5f60718"));
    assert_eq!(
        ec2.iam_instance_profile(),
        Some(deployed.outputs["EmrInstanceProfileName"].as_str())
    );
    assert_eq!(
        ec2.emr_managed_master_security_group(),
        Some("sg-0a1b2c3d4e5f60001")
    );
    assert_eq!(
        ec2.emr_managed_slave_security_group(),
        Some("sg-0a1b2c3d4e5f60002")
    );
    assert_eq!(
        ec2.service_access_security_group(),
        Some("sg-0a1b2c3d4e5f60003")
    );
    assert_eq!(
        ec2.additional_master_security_groups(),
        ["sg-0a1b2c3d4e5f60004"]
    );
    let tags: BTreeMap<_, _> = cluster
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
        .collect();
    assert_eq!(tags[TAG_CORRELATION_ID], run.as_str());
    assert_eq!(tags["Environment"], "production");
    assert_eq!(tags["for-use-with-amazon-emr-managed-policies"], "true");
    let site = cluster
        .configurations()
        .iter()
        .find(|c| c.classification() == Some("hbase-site"))
        .expect("hbase-site");
    assert_eq!(
        site.properties().and_then(|p| p.get("hbase.rootdir")),
        Some(&root.to_owned())
    );

    let groups = emr
        .list_instance_groups()
        .cluster_id(&cluster_id)
        .send()
        .await
        .expect("instance groups");
    let core = groups
        .instance_groups()
        .iter()
        .find(|g| g.instance_group_type() == Some(&InstanceGroupType::Core))
        .expect("core group");
    assert_eq!(core.instance_type(), Some("m5.4xlarge"));
    assert_eq!(core.requested_instance_count(), Some(175));

    let actions = emr
        .list_bootstrap_actions()
        .cluster_id(&cluster_id)
        .send()
        .await
        .expect("bootstrap actions");
    let setup = &actions.bootstrap_actions()[0];
    assert_eq!(
        setup.script_path(),
        Some("s3://intraday-artifacts-123456789012-eu-west-2/emr/bootstrap.sh")
    );
    assert_eq!(
        setup.args(),
        [
            "--extractor",
            "s3://intraday-artifacts-123456789012-eu-west-2/emr/intraday-extractor",
            "--sha256",
            SUM,
            "--install-path",
            "/usr/local/bin/intraday-extractor",
            "--spark-driver",
            "s3://intraday-artifacts-123456789012-eu-west-2/emr/intraday_spark.py",
            "--spark-driver-sha256",
            DRIVER_SUM,
            "--spark-driver-path",
            "/usr/local/share/intraday/intraday_spark.py",
            "--dks-tls-secret",
            "/intraday/dks-client-tls",
            "--tls-dir",
            "/etc/intraday/dks",
        ]
    );

    let steps = emr
        .list_steps()
        .cluster_id(&cluster_id)
        .send()
        .await
        .expect("steps");
    let config = steps.steps()[0].config().expect("config");
    assert_eq!(config.jar(), Some("command-runner.jar"));
    let args = config.args().to_vec();
    // The sample's second collection has never run (its window starts at 0), so `auto`
    // makes it a Spark application over the 175 core nodes.
    assert_eq!(
        args[..5],
        [
            "spark-submit",
            "--master",
            "yarn",
            "--deploy-mode",
            "client"
        ]
    );
    let confs: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--conf")
        .map(|w| w[1].as_str())
        .collect();
    for conf in ["spark.task.maxFailures=2", "spark.speculation=false"] {
        assert!(confs.contains(&conf), "{conf} in {confs:?}");
    }
    assert_eq!(
        args[5 + 2 * confs.len()],
        "/usr/local/share/intraday/intraday_spark.py"
    );
    let after = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args[i + 1].clone())
            .unwrap_or_else(|| panic!("{flag} in {args:?}"))
    };
    assert_eq!(after("--ranges"), "2800");
    assert_eq!(after("--extractor"), "/usr/local/bin/intraday-extractor");
    assert_eq!(after("--correlation-id"), run.as_str());
    assert_eq!(after("--dks-url"), "https://dks.internal:8443");
    assert_eq!(after("--dks-cert"), "/etc/intraday/dks/client.crt");
    assert_eq!(after("--dks-key"), "/etc/intraday/dks/client.key");
    assert_eq!(after("--dks-ca"), "/etc/intraday/dks/ca.crt");
    assert_eq!(after("--dks-max-attempts"), "5");
    let _ = std::fs::remove_dir_all(&work);
}
