//! Deploys `infra/template.yaml` to moto server through CloudFormation and checks the
//! resources it promises. moto skips some resource types (queue and bucket policies, the
//! secret) and ignores some properties; those are checked by cfn-lint, not here.

use std::collections::BTreeMap;
use std::time::Duration;

use intraday_aws::{Queues, Stacks};
use intraday_testkit as kit;

const LOCAL: &[(&str, &str)] = &[
    ("EnableSchedules", "false"),
    ("EnforceTls", "false"),
    ("CodeBucket", ""),
];

#[tokio::test]
async fn moto_template_deploys_with_every_promised_output() {
    let aws = kit::aws().await;
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/template.yaml"
    ))
    .expect("read infra/template.yaml");
    let prefix = kit::unique("t");
    let table = format!("{prefix}-jobs");
    let mut parameters = LOCAL.to_vec();
    parameters.push(("Prefix", &prefix));
    parameters.push(("JobTableName", &table));
    let stacks = Stacks::new(aws.cloudformation());
    let deployed = stacks
        .create(&prefix, &template, &parameters, Duration::from_secs(60))
        .await
        .expect("stack deploys");
    assert_eq!(deployed.status, "CREATE_COMPLETE");

    let outputs: &BTreeMap<String, String> = &deployed.outputs;
    let queues = Queues::new(aws.sqs());
    for service in ["Scheduler", "Launcher", "Monitor", "Tables", "Reaper"] {
        let url = &outputs[&format!("{service}QueueUrl")];
        let dlq = &outputs[&format!("{service}DlqUrl")];
        let attributes = queues.attributes(url).await.expect("queue attributes");
        let redrive: serde_json::Value =
            serde_json::from_str(&attributes["RedrivePolicy"]).expect("redrive policy JSON");
        let dlq_arn = &queues.attributes(dlq).await.expect("dlq attributes")["QueueArn"];
        assert_eq!(
            redrive["deadLetterTargetArn"].as_str(),
            Some(dlq_arn.as_str()),
            "{service}"
        );
        assert_eq!(
            redrive["maxReceiveCount"].to_string().trim_matches('"'),
            "5",
            "{service}"
        );
        let dlq_retention =
            &queues.attributes(dlq).await.expect("dlq attributes")["MessageRetentionPeriod"];
        assert_eq!(dlq_retention, "1209600", "{service} DLQ keeps 14 days");
    }

    assert_eq!(outputs["JobTableName"], table);
    let described = aws
        .dynamodb()
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .expect("table");
    let indexes: Vec<&str> = described
        .table()
        .expect("table")
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    assert!(
        indexes.contains(&"byCollection") && indexes.contains(&"byCluster"),
        "{indexes:?}"
    );

    let bucket = &outputs["OutputBucketName"];
    aws.s3()
        .head_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("output bucket exists");
    // Personal data at rest: the output bucket under the stack's own key.
    let encryption = aws
        .s3()
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
        .expect("bucket encryption");
    let default = &encryption
        .server_side_encryption_configuration()
        .expect("configuration")
        .rules()[0]
        .apply_server_side_encryption_by_default()
        .expect("default encryption");
    assert_eq!(default.sse_algorithm().as_str(), "aws:kms");
    assert_eq!(
        default.kms_master_key_id(),
        Some(outputs["OutputKeyArn"].as_str())
    );
    // (moto's CloudFormation drops `BucketKeyEnabled`; the template sets it, cfn-lint checks
    // the property, and S3 applies it.)
    // (moto's CloudFormation drops `LifecycleConfiguration` too: the abort-incomplete-upload
    // and noncurrent-version rules are checked by cfn-lint against S3's schema.)
    assert_eq!(
        described
            .table()
            .and_then(|t| t.deletion_protection_enabled()),
        Some(true),
        "the job table is protected from deletion"
    );

    // The alerts topic is under its own key (whose policy lets CloudWatch alarms publish).
    let topic = &outputs["AlertsTopicArn"];
    let attributes = aws
        .sns()
        .get_topic_attributes()
        .topic_arn(topic)
        .send()
        .await
        .expect("alerts topic exists");
    let key = attributes
        .attributes()
        .and_then(|a| a.get("KmsMasterKeyId"))
        .cloned()
        .unwrap_or_default();
    assert!(key.starts_with("arn:aws:kms:"), "{key}");
    // (Its policy is not read back here: moto answers GetKeyPolicy for a key CloudFormation
    // made with the policy as a JSON object, not the string AWS sends, and the SDK refuses it.
    // KMS key policies are not enforced by any emulator here; the statement follows the SNS
    // guide cited in the template.)
    // (moto's CloudFormation skips AWS::CloudWatch::Alarm: the alarms on every dead-letter
    // queue and function are checked against the template in `template_alarms.rs`.)
    for rule in ["EmrStateRuleArn", "EmrTerminatedRuleArn"] {
        assert!(
            outputs[rule].contains(&prefix),
            "{rule} = {}",
            outputs[rule]
        );
    }
}
