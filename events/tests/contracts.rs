//! The message contracts: checked-in schemas are current, every sample and AWS fixture
//! parses and validates, and bad input is refused with an error that names the problem.

use std::fs;
use std::path::{Path, PathBuf};

use intraday_events::{
    AwsEventDetail, ClusterState, Inbound, Manifest, Message, ReasonCode, StepState, schema,
};
use serde_json::{Value, json};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn validate(schema_file: &str, instance: &Value) -> Result<(), Vec<String>> {
    let path = crate_dir().join("schemas").join(schema_file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[test]
fn checked_in_schemas_are_current() {
    let write = std::env::var_os("INTRADAY_WRITE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (file, generated) in schema::all() {
        let path = crate_dir().join("schemas").join(file);
        let rendered = schema::render(&generated);
        if write {
            fs::write(&path, &rendered).expect("write schema");
        } else if fs::read_to_string(&path).ok().as_deref() != Some(rendered.as_str()) {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "schemas out of date with the Rust types: {stale:?}; regenerate them with \
         `INTRADAY_WRITE_SCHEMAS=1 cargo test -p intraday-events --test contracts` and commit them"
    );
}

#[test]
fn every_sample_parses_round_trips_and_validates() {
    let files = json_files(&crate_dir().join("samples"));
    assert!(files.len() >= 6, "samples went missing: {files:?}");
    for path in files {
        let text = fs::read_to_string(&path).expect("read sample");
        let value: Value = serde_json::from_str(&text).expect("sample is JSON");
        let schema_file = schema::file_for(&value)
            .unwrap_or_else(|| panic!("{}: no schema for this shape", path.display()));
        if let Err(errors) = validate(schema_file, &value) {
            panic!(
                "{} does not validate against {schema_file}: {errors:#?}",
                path.display()
            );
        }
        if schema_file == "manifest.json" {
            let manifest = Manifest::parse(&text).expect("manifest parses");
            let again = serde_json::to_string(&manifest).expect("serialises");
            assert_eq!(Manifest::parse(&again).expect("reparses"), manifest);
        } else {
            let message =
                Message::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                Message::parse(&message.to_body()).expect("reparses"),
                message
            );
            validate(
                "message.json",
                &serde_json::from_str(&message.to_body()).expect("json"),
            )
            .expect("what we write validates");
        }
    }
}

#[test]
fn every_aws_fixture_parses_and_validates() {
    let files = json_files(&crate_dir().join("samples/aws"));
    assert!(files.len() >= 11, "AWS fixtures went missing: {files:?}");
    for path in files {
        let text = fs::read_to_string(&path).expect("read fixture");
        let value: Value = serde_json::from_str(&text).expect("fixture is JSON");
        let schema_file = schema::file_for(&value).expect("a schema for every fixture");
        if let Err(errors) = validate(schema_file, &value) {
            panic!(
                "{} does not validate against {schema_file}: {errors:#?}",
                path.display()
            );
        }
        match Inbound::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
            Inbound::Aws(event) => assert!(
                !matches!(event.detail, AwsEventDetail::Other(_)),
                "{} was not recognised",
                path.display()
            ),
            Inbound::Message(m) => panic!("{} read as our message {m:?}", path.display()),
        }
    }
}

#[test]
fn reads_the_cluster_state_change_reason_inside_detail() {
    let text = fs::read_to_string(
        crate_dir().join("samples/aws/emr-cluster-state-change-terminated-with-errors.json"),
    )
    .expect("fixture");
    let Inbound::Aws(event) = Inbound::parse(&text).expect("parses") else {
        panic!("not an AWS event");
    };
    let AwsEventDetail::ClusterStateChange(change) = &event.detail else {
        panic!("not a cluster change: {:?}", event.detail);
    };
    assert_eq!(change.state, ClusterState::TerminatedWithErrors);
    assert_eq!(change.state_change_reason.code, ReasonCode::StepFailure);
    assert!(change.state_change_reason.message.is_some());
    assert!(event.time_ms() > 0);
}

fn aws_event(detail_type: &str, detail: Value) -> String {
    json!({
        "version": "0", "id": "e1", "detail-type": detail_type, "source": "aws.emr",
        "time": "2024-03-11T10:58:40Z", "region": "eu-west-2", "resources": [],
        "detail": detail
    })
    .to_string()
}

#[test]
fn tolerates_unknown_fields_states_and_a_missing_account() {
    let body = aws_event(
        "EMR Step Status Change",
        json!({"stepId": "s-1", "clusterId": "j-1", "name": "x", "state": "SOMETHING_NEW",
               "brandNew": 1}),
    );
    let mut value: Value = serde_json::from_str(&body).expect("json");
    value["replay-name"] = json!("r1");
    let Inbound::Aws(event) = Inbound::parse(&value.to_string()).expect("parses") else {
        panic!("not an AWS event");
    };
    assert_eq!(event.account, None);
    let AwsEventDetail::StepStatusChange(step) = &event.detail else {
        panic!("not a step change");
    };
    assert_eq!(step.state, StepState::Unknown("SOMETHING_NEW".to_owned()));
}

#[test]
fn an_unknown_detail_type_is_recognised_not_refused() {
    let body = aws_event("EMR Instance Group State Change", json!({"anything": true}));
    let Inbound::Aws(event) = Inbound::parse(&body).expect("parses") else {
        panic!("not an AWS event");
    };
    assert_eq!(
        event.detail,
        AwsEventDetail::Other("EMR Instance Group State Change".to_owned())
    );
}

fn sample(name: &str) -> Value {
    let text = fs::read_to_string(crate_dir().join("samples").join(name)).expect("sample");
    serde_json::from_str(&text).expect("json")
}

#[test]
fn bad_input_is_refused_with_an_error_naming_the_problem() {
    let mut newer = sample("run-requested.json");
    newer["version"] = json!(2);
    let mut unknown = sample("run-requested.json");
    unknown["type"] = json!("RunCancelled");
    let mut no_correlation = sample("launch-requested.json");
    no_correlation
        .as_object_mut()
        .expect("object")
        .remove("correlation_id");
    let mut empty_window = sample("launch-requested.json");
    empty_window["collections"][1]["window"] = json!({"start_ms": 5, "end_ms": 5});
    let mut bad_collection = sample("launch-requested.json");
    bad_collection["collections"][0]["collection"] = json!("db.core.x;rm");
    let mut twice = sample("launch-requested.json");
    twice["collections"][1]["collection"] = json!("db.core.claimant");
    let mut bad_output = sample("launch-requested.json");
    bad_output["output"] = json!("s3://bucket/../etc");
    let mut backfill_without_collections = sample("run-requested-backfill.json");
    backfill_without_collections
        .as_object_mut()
        .expect("object")
        .remove("collections");
    let mut no_version = sample("alert.json");
    no_version
        .as_object_mut()
        .expect("object")
        .remove("version");

    let cases: Vec<(String, &str)> = vec![
        ("{not json".to_owned(), "message body is not JSON: key must be a string at line 1 column 2"),
        ("[1, 2]".to_owned(), "message body is a JSON array, not an object"),
        ("{\"hello\": 1}".to_owned(), "message is neither an EventBridge event (no `detail-type`) nor an Intraday message (no `type`)"),
        (unknown.to_string(), "message type `RunCancelled` is unknown; expected one of RunRequested, LaunchRequested, ExtractionCompleted, Alert"),
        (newer.to_string(), "RunRequested version 2 is newer than this release understands (up to 1); deploy the newer release, then redrive the message from the dead-letter queue"),
        (no_version.to_string(), "message field `version` is missing"),
        (no_correlation.to_string(), "LaunchRequested is not valid at `(top level)`: missing field `correlation_id`"),
        (empty_window.to_string(), "LaunchRequested is not valid at `collections[1].window`: invalid window [5, 5): the start must be before the end"),
        (bad_collection.to_string(), "LaunchRequested is not valid at `collections[0].collection`: invalid collection `db.core.x;rm`: the table name holds ';'"),
        (twice.to_string(), "LaunchRequested is not valid at `collections[1].collection`: db.core.claimant is listed twice"),
        (bad_output.to_string(), "LaunchRequested is not valid at `output`: invalid S3 location `s3://bucket/../etc`: the key holds a `.` or `..` segment"),
        (backfill_without_collections.to_string(), "RunRequested is not valid at `collections`: a backfill must name its collections"),
        (aws_event("EMR Cluster State Change", json!({"name": "n", "state": "RUNNING"})), "EMR Cluster State Change detail is not valid at `(top level)`: missing field `clusterId`"),
        (aws_event("EMR Cluster State Change", json!({"name": "n", "state": "RUNNING", "clusterId": "j-1", "stateChangeReason": "{oops"})), "EMR Cluster State Change detail is not valid at `stateChangeReason`: stateChangeReason is not a JSON object"),
        (json!({"detail-type": "Scheduled Event", "id": "x", "source": "aws.events", "region": "r", "detail": {}}).to_string(), "EventBridge event is not valid at `(top level)`: missing field `time`"),
    ];
    for (body, want) in cases {
        let err = Inbound::parse(&body).expect_err(want).to_string();
        assert!(err.starts_with(want), "\n want: {want}\n  got: {err}");
    }
}

#[test]
fn a_manifest_from_a_newer_release_is_refused() {
    let mut manifest = sample("manifest.json");
    manifest["version"] = json!(7);
    let err = Manifest::parse(&manifest.to_string())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("Manifest version 7 is newer than this release"),
        "{err}"
    );
}
