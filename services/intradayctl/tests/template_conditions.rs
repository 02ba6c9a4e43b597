//! What moto does not enforce, checked against the template: every `Condition` on a service
//! role's statement, and that what the code sends satisfies it. moto drops conditions (a
//! statement whose condition it cannot evaluate is a deny, so `local demo --enforce-iam` puts
//! the policies back without them, docs/moto-iam.md); in AWS they are what keeps a role to
//! its own resources. A new condition fails here until it is added with how it is checked.

use intraday_core::S3Uri;
use intradayctl::local::roles::{self, SERVICE_ROLES};
use serde_yaml::Value;

fn template() -> Value {
    roles::template(include_str!("../../../infra/template.yaml")).expect("template")
}

/// Every conditioned statement: role, Sid, condition operator, key.
const REVIEWED: &[(&str, &str, &str, &str)] = &[
    (
        "LauncherRole",
        "PassEmrRoles",
        "StringEquals",
        "iam:PassedToService",
    ),
    (
        "MonitorRole",
        "StopOnlyOurClusters",
        "StringEquals",
        "elasticmapreduce:ResourceTag/ManagedBy",
    ),
    (
        "MonitorRole",
        "DecryptManifests",
        "StringEquals",
        "kms:ViaService",
    ),
    (
        "ReaperRole",
        "ListHBaseRootBucket",
        "StringLike",
        "s3:prefix",
    ),
    (
        "EmrServiceRole",
        "PassNodesRole",
        "StringEquals",
        "iam:PassedToService",
    ),
    (
        "EmrServiceRole",
        "DiskKeyGrantsForEc2",
        "Bool",
        "kms:GrantIsForAWSResource",
    ),
    ("EmrInstanceRole", "ListOutput", "StringLike", "s3:prefix"),
    (
        "EmrInstanceRole",
        "OutputKeyThroughS3",
        "StringEquals",
        "kms:ViaService",
    ),
    (
        "EmrInstanceRole",
        "DecryptDataKeys",
        "StringEquals",
        "kms:EncryptionContext:keyEncryptionKeyId",
    ),
];

/// The roles whose conditions are reviewed: the services' and the EMR clusters'.
fn roles_reviewed() -> impl Iterator<Item = &'static str> {
    SERVICE_ROLES
        .iter()
        .map(|(role, _)| *role)
        .chain(["EmrServiceRole", "EmrInstanceRole"])
}

/// The value of condition `operator`/`key` of the statement `sid` in `role`.
fn condition(template: &Value, role: &str, sid: &str, operator: &str, key: &str) -> Value {
    roles::policies(template, role)
        .iter()
        .flat_map(|p| p.statements.iter())
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("{role} has no statement {sid}"))["Condition"][operator][key]
        .clone()
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(list) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        // `!Sub "..."`: the text before substitution.
        Value::Tagged(tagged) => strings(&tagged.value),
        _ => Vec::new(),
    }
}

/// IAM's `StringLike`: `*` matches any run of characters, `?` one.
fn like(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[test]
fn every_condition_on_a_service_role_is_reviewed() {
    let template = template();
    let mut found = Vec::new();
    for role in roles_reviewed() {
        for statement in roles::policies(&template, role)
            .iter()
            .flat_map(|p| p.statements.iter())
        {
            for (operator, keys) in statement["Condition"].as_mapping().into_iter().flatten() {
                for (key, _) in keys.as_mapping().into_iter().flatten() {
                    found.push((
                        role.to_owned(),
                        statement["Sid"].as_str().unwrap_or("(no Sid)").to_owned(),
                        operator.as_str().unwrap_or_default().to_owned(),
                        key.as_str().unwrap_or_default().to_owned(),
                    ));
                }
            }
        }
    }
    let mut reviewed: Vec<_> = REVIEWED
        .iter()
        .map(|(r, s, o, k)| (r.to_string(), s.to_string(), o.to_string(), k.to_string()))
        .collect();
    found.sort();
    reviewed.sort();
    assert_eq!(
        found, reviewed,
        "add each condition to REVIEWED with a test of it here"
    );
}

/// The monitor may stop only clusters carrying the tag the launcher puts on every cluster it
/// starts (the launcher's own tests check the request carries it).
#[test]
fn the_monitor_stops_only_clusters_tagged_as_the_launcher_tags_them() {
    let (tag, value) = intraday_aws::emr::TAG_MANAGED_BY;
    let wanted = condition(
        &template(),
        "MonitorRole",
        "StopOnlyOurClusters",
        "StringEquals",
        &format!("elasticmapreduce:ResourceTag/{tag}"),
    );
    assert_eq!(strings(&wanted), vec![value.to_owned()]);
}

/// PassRole only to the two services that take the roles in RunJobFlow.
#[test]
fn the_launcher_passes_roles_only_to_emr_and_ec2() {
    let services = condition(
        &template(),
        "LauncherRole",
        "PassEmrRoles",
        "StringEquals",
        "iam:PassedToService",
    );
    assert_eq!(
        strings(&services),
        ["elasticmapreduce.amazonaws.com", "ec2.amazonaws.com"]
    );
}

/// The monitor decrypts the output key only through S3 (reading a manifest), not directly.
#[test]
fn the_monitor_decrypts_only_through_s3() {
    let via = condition(
        &template(),
        "MonitorRole",
        "DecryptManifests",
        "StringEquals",
        "kms:ViaService",
    );
    assert_eq!(strings(&via), ["s3.${AWS::Region}.amazonaws.com"]);
}

/// The reaper lists exactly the prefixes it deletes, whatever the HBase root's depth, and no
/// prefix of the primary's tables.
#[test]
fn the_reaper_lists_only_replica_metadata() {
    let pattern = strings(&condition(
        &template(),
        "ReaperRole",
        "ListHBaseRootBucket",
        "StringLike",
        "s3:prefix",
    ));
    let [pattern] = pattern.as_slice() else {
        panic!("one prefix pattern: {pattern:?}");
    };
    for root in [
        "s3://ingest-hbase",
        "s3://ingest-hbase/hbase",
        "s3://ingest/a/b/c",
    ] {
        let at = intraday_reaper::meta_locations(&S3Uri::parse(root).expect("root"), "j-ABC123")
            .expect("locations");
        for listed in [at.prefix.key(), at.marker.key()] {
            assert!(like(pattern, listed), "{pattern} refuses {listed}");
        }
    }
    for table in [
        "hbase/data/default/claimant/",
        "hbase/data/hbase/namespace/",
    ] {
        assert!(!like(pattern, table), "{pattern} allows {table}");
    }
}

/// The nodes list only the output prefixes the extractor writes (scheduled runs under data/,
/// backfills under backfill/: the scheduler refuses others).
#[test]
fn the_nodes_list_only_the_output_prefixes() {
    let patterns = strings(&condition(
        &template(),
        "EmrInstanceRole",
        "ListOutput",
        "StringLike",
        "s3:prefix",
    ));
    for listed in [
        "data/core_claimant/run=20240311-1030/part-",
        "backfill/core_claimant/run=20240311-1030/part-",
    ] {
        assert!(
            patterns.iter().any(|p| like(p, listed)),
            "{patterns:?} refuse {listed}"
        );
    }
    assert!(!patterns.iter().any(|p| like(p, "other/x")), "{patterns:?}");
}

/// The nodes decrypt a data key only with the context the extractor sends, whose value is the
/// key the record names.
#[test]
fn the_nodes_decrypt_data_keys_only_with_the_extractors_context() {
    let key = format!(
        "kms:EncryptionContext:{}",
        intraday_extractor::kms::CONTEXT_KEY
    );
    let value = condition(
        &template(),
        "EmrInstanceRole",
        "DecryptDataKeys",
        "StringEquals",
        &key,
    );
    assert!(
        matches!(&value, Value::Tagged(t) if t.value.as_str() == Some("DataKeysKmsKeyArn")),
        "{value:?}"
    );
}

/// EMR passes the nodes' role to EC2 only, and creates disk-key grants only for AWS resources.
#[test]
fn the_service_role_passes_the_nodes_role_only_to_ec2() {
    let template = template();
    let services = condition(
        &template,
        "EmrServiceRole",
        "PassNodesRole",
        "StringEquals",
        "iam:PassedToService",
    );
    assert_eq!(strings(&services), ["ec2.amazonaws.com"]);
    let for_resources = condition(
        &template,
        "EmrServiceRole",
        "DiskKeyGrantsForEc2",
        "Bool",
        "kms:GrantIsForAWSResource",
    );
    assert_eq!(strings(&for_resources), ["true"]);
    let via = condition(
        &template,
        "EmrInstanceRole",
        "OutputKeyThroughS3",
        "StringEquals",
        "kms:ViaService",
    );
    assert_eq!(strings(&via), ["s3.${AWS::Region}.amazonaws.com"]);
}

#[test]
fn like_matches_as_iam_does() {
    assert!(like("*data/hbase/meta_*", "data/hbase/meta_j-1/"));
    assert!(like("a?c", "abc"));
    assert!(!like("a?c", "ac"));
    assert!(!like("*meta_*", "hbase/data/x"));
}
