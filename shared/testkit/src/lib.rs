//! Test support for moto-backed tests.
//!
//! [`moto`] returns a loopback endpoint: the one `ci/test.sh` started (exported as
//! `INTRADAY_TEST_ENDPOINT`), or, when a developer runs `cargo test` directly, a moto server
//! this process starts on a free port and that stops when the process ends. With neither
//! available, the test fails loudly: a moto-backed test is never silently skipped.
//! [`unique`] names resources so tests never collide on one server.

pub mod faults;
pub mod hbase;
mod http;
pub mod iam;
pub mod lambda;
pub mod tools;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use intraday_aws::{Aws, AwsSettings};

pub const ENDPOINT_VAR: &str = "INTRADAY_TEST_ENDPOINT";
pub const REGION: &str = "eu-west-2";

static ENDPOINT: OnceLock<String> = OnceLock::new();

/// The moto server endpoint every test in this process uses.
pub fn moto() -> &'static str {
    ENDPOINT.get_or_init(|| match std::env::var(ENDPOINT_VAR) {
        Ok(endpoint) if !endpoint.is_empty() => {
            wait_for(&endpoint);
            endpoint
        }
        _ => start_moto(""),
    })
}

/// A moto server of this test's own that lets `free_requests` requests through and then
/// checks every request against IAM (`INITIAL_NO_AUTH_ACTION_COUNT`). Never shared: the
/// free requests are counted server-wide.
pub fn moto_enforcing_iam(free_requests: u32) -> String {
    start_moto(&format!("INITIAL_NO_AUTH_ACTION_COUNT={free_requests} "))
}

/// Clients for moto: its endpoint, the test region, throwaway credentials.
pub async fn aws() -> Aws {
    AwsSettings::emulator(moto(), REGION).load().await
}

/// A resource name no other test uses: `<prefix>-<8 hex>`, lower case, valid for queues,
/// buckets, tables and topics.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..8])
}

/// Starts moto server with `env` (`NAME=value `, or empty) before its command.
fn start_moto(env: &str) -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port for moto server: {e}"));
    // A watchdog shell owns moto and kills it when this test process (its parent) exits,
    // however the process ends.
    let binary = tools::moto_server().unwrap_or_else(|| {
        panic!(
            "moto server is needed for this test and none is running: run `ci/test.sh` (it \
             installs and starts one), or `ci/setup.sh`, or export \
             {ENDPOINT_VAR}=http://127.0.0.1:<port> for a server you started"
        )
    });
    if let Some(warning) = tools::moto_warning(&binary) {
        eprintln!("testkit: {warning}");
    }
    let script = format!(
        "{env}'{}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $m",
        binary.display(),
        parent = std::process::id()
    );
    // The watchdog is never waited for: it must outlive every test in this process, and it
    // exits by itself when the process does.
    #[expect(
        clippy::zombie_processes,
        reason = "the watchdog outlives the tests by design"
    )]
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start moto_server: {e}"));
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_for(&endpoint);
    endpoint
}

fn wait_for(endpoint: &str) {
    let addr: SocketAddr = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("{ENDPOINT_VAR}={endpoint} is not http://<ip>:<port>: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto server at {endpoint} did not answer within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates a job table shaped like the template's (key CorrelationId/Collection, GSIs
/// byCollection and byCluster) and returns its name.
pub async fn job_table(aws: &Aws) -> String {
    create_job_table(aws, true).await
}

/// Creates a job table shaped like the original system's (its `dynamodb.tf`: the same key and
/// `byCollection`, no `byCluster`) and returns its name.
pub async fn original_job_table(aws: &Aws) -> String {
    create_job_table(aws, false).await
}

/// Writes one job item as the original system does: `UpdateItem` with `AttributeUpdates`,
/// each a PUT, keyed by its UUID run id and the HBase table name (`core:claimant`).
pub async fn original_job_item(
    aws: &Aws,
    table: &str,
    run: &str,
    collection: &str,
    attrs: &[(&str, intraday_aws::AttributeValue)],
) {
    use aws_sdk_dynamodb::types::{AttributeValue, AttributeValueUpdate};
    let mut update = aws
        .dynamodb()
        .update_item()
        .table_name(table)
        .key("CorrelationId", AttributeValue::S(run.to_owned()))
        .key("Collection", AttributeValue::S(collection.to_owned()));
    for (name, value) in attrs {
        update = update.attribute_updates(
            *name,
            AttributeValueUpdate::builder().value(value.clone()).build(),
        );
    }
    update
        .send()
        .await
        .unwrap_or_else(|e| panic!("the original's UpdateItem on {table}: {e:?}"));
}

/// Every cluster, in any state, tagged with the run's `CorrelationId`: how many clusters a
/// run really started, whatever the job table recorded.
pub async fn clusters_tagged(emr: &intraday_aws::Emr, run: &str) -> Vec<String> {
    let mut found = Vec::new();
    for cluster in emr
        .list(&intraday_aws::emr::ALL_STATES, None)
        .await
        .expect("list clusters")
    {
        let tags = emr.describe(&cluster.id).await.expect("describe").tags;
        if tags
            .get(intraday_aws::emr::TAG_CORRELATION_ID)
            .map(String::as_str)
            == Some(run)
        {
            found.push(cluster.id);
        }
    }
    found
}

/// The smallest cluster moto starts: one master, HBase, kept alive, with `tags`.
pub fn cluster_request(tags: &[(&str, &str)]) -> intraday_aws::emr::ClusterRequest {
    intraday_aws::emr::ClusterRequest {
        name: "intraday-incremental".into(),
        release_label: "emr-7.12.0".into(),
        log_uri: None,
        applications: vec!["HBase".into()],
        instance_groups: vec![intraday_aws::emr::InstanceGroup {
            role: "MASTER".into(),
            instance_type: "m5.xlarge".into(),
            count: 1,
            market: None,
        }],
        subnet_id: None,
        security_groups: Default::default(),
        custom_ami_id: None,
        keep_alive: true,
        configurations: vec![],
        bootstrap_actions: vec![],
        steps: vec![],
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<std::collections::BTreeMap<_, _>>(),
        security_configuration: None,
        service_role: None,
        job_flow_role: None,
    }
}

/// A catalog table as the original's Hive DDL made it: its three text columns, OpenCSVSerde,
/// not partitioned, over the collection's folder.
pub fn original_table(name: &str, location: &str) -> intraday_aws::TableSpec {
    use intraday_aws::{Column, Storage, TableSpec};
    TableSpec {
        name: name.to_owned(),
        columns: ["id", "record_timestamp", "record"]
            .map(|c| Column::new(c, "string"))
            .to_vec(),
        partition_keys: vec![],
        location: location.to_owned(),
        storage: Storage {
            input_format: "org.apache.hadoop.mapred.TextInputFormat".into(),
            output_format: "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat".into(),
            serde_library: "org.apache.hadoop.hive.serde2.OpenCSVSerde".into(),
            serde_parameters: Default::default(),
            compressed: false,
        },
        parameters: Default::default(),
    }
}

async fn create_job_table(aws: &Aws, by_cluster: bool) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
    };
    let name = unique("jobs");
    let key = |attr: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(attr)
            .key_type(kind)
            .build()
            .expect("key schema")
    };
    let attr = |attr: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(attr)
            .attribute_type(kind)
            .build()
            .expect("attribute definition")
    };
    let include = |names: &[&str]| {
        Projection::builder()
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(names.iter().map(|s| (*s).to_owned()).collect()))
            .build()
    };
    let mut create = aws
        .dynamodb()
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("CorrelationId", ScalarAttributeType::S))
        .attribute_definitions(attr("Collection", ScalarAttributeType::S))
        .attribute_definitions(attr("TriggeredTime", ScalarAttributeType::N))
        .key_schema(key("CorrelationId", KeyType::Hash))
        .key_schema(key("Collection", KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("byCollection")
                .key_schema(key("Collection", KeyType::Hash))
                .key_schema(key("TriggeredTime", KeyType::Range))
                .projection(include(&[
                    "JobStatus",
                    "ProcessedDataStart",
                    "ProcessedDataEnd",
                ]))
                .build()
                .expect("byCollection"),
        );
    if by_cluster {
        create = create
            .attribute_definitions(attr("EMRClusterId", ScalarAttributeType::S))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name("byCluster")
                    .key_schema(key("EMRClusterId", KeyType::Hash))
                    .projection(include(&["JobStatus"]))
                    .build()
                    .expect("byCluster"),
            );
    }
    create
        .send()
        .await
        .unwrap_or_else(|e| panic!("create table {name}: {e:?}"));
    name
}

/// A queue and its dead-letter queue (`maxReceiveCount` as given); returns both URLs.
pub async fn queue_with_dlq(aws: &Aws, max_receive_count: u32) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let sqs = aws.sqs();
    let name = unique("q");
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .expect("create dlq")
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let dlq_arn = queue_arn(aws, &dlq_url).await;
    let redrive =
        format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receive_count}"}}"#);
    let url = sqs
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    (url, dlq_url)
}

pub async fn bucket(aws: &Aws) -> String {
    let name = unique("bucket");
    aws.s3()
        .create_bucket()
        .bucket(&name)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {name}: {e:?}"));
    name
}

/// A topic with a queue subscribed to it (raw delivery); returns (topic ARN, queue URL).
pub async fn topic_with_queue(aws: &Aws) -> (String, String) {
    let name = unique("alerts");
    let topic = aws
        .sns()
        .create_topic()
        .name(&name)
        .send()
        .await
        .expect("create topic")
        .topic_arn()
        .unwrap_or_default()
        .to_owned();
    let sqs = aws.sqs();
    let url = sqs
        .create_queue()
        .queue_name(format!("{name}-sub"))
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let arn = queue_arn(aws, &url).await;
    aws.sns()
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .expect("subscribe");
    (topic, url)
}

/// Receives and deletes everything on a queue; returns the bodies in arrival order. Two
/// empty long polls in a row mean empty (SQS may return nothing once while messages exist).
pub async fn drain(queues: &intraday_aws::Queues, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let got = queues
            .receive(url, 10, Duration::from_millis(500), None)
            .await
            .expect("receive");
        if got.is_empty() {
            empty += 1;
        }
        for m in got {
            queues.delete(url, &m.receipt_handle).await.expect("delete");
            bodies.push(m.body);
        }
    }
    bodies
}

/// Puts empty objects at `keys`, 64 at a time.
pub async fn put_empty_objects(aws: &Aws, bucket: &str, keys: &[String]) {
    let s3 = aws.s3();
    for chunk in keys.chunks(64) {
        let puts: Vec<_> = chunk
            .iter()
            .map(|key| {
                let (s3, bucket, key) = (s3.clone(), bucket.to_owned(), key.clone());
                tokio::spawn(async move {
                    s3.put_object()
                        .bucket(bucket)
                        .key(key)
                        .body(Vec::new().into())
                        .send()
                        .await
                })
            })
            .collect();
        for put in puts {
            put.await.expect("task").expect("put");
        }
    }
}

/// A queue's ARN, by its URL.
pub async fn queue_arn(aws: &Aws, url: &str) -> String {
    intraday_aws::Queues::new(aws.sqs())
        .attributes(url)
        .await
        .expect("queue attributes")
        .get("QueueArn")
        .cloned()
        .expect("queue arn")
}
