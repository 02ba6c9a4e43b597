//! The launcher's settings, from its environment (the template's Lambda variables).

use std::time::Duration;

use crate::LaunchError;
use intraday_runtime::env::required;

use crate::cluster::{ClusterTemplate, DEFAULT_TEMPLATE};

pub struct Config {
    pub job_table: String,
    pub alerts_topic_arn: String,
    pub template: ClusterTemplate,
    pub claim_timeout: Duration,
}

impl Config {
    /// The launcher's settings from its environment, as the template sets it.
    pub fn from_env() -> Result<Self, LaunchError> {
        let template = cluster_template(|name| std::env::var(name).ok())?;
        Ok(Self {
            job_table: required(
                "INTRADAY_JOB_TABLE",
                "it names the job table (stack output JobTableName)",
            )?,
            alerts_topic_arn: required(
                "INTRADAY_ALERTS_TOPIC_ARN",
                "it names the alerts topic (stack output AlertsTopicArn)",
            )?,
            template,
            claim_timeout: Duration::from_secs(120),
        })
    }
}

/// What the stack sets, by variable: the cluster setting, and what it is. The stack makes the
/// roles and the security configuration and grants the nodes exactly its log prefix; EmrParams
/// naming any of them would run clusters with grants the stack never reviewed.
const FROM_STACK: &[(&str, &str, &str)] = &[
    (
        "INTRADAY_HBASE_ROOT",
        "hbase_root",
        "HBaseRootS3Uri, which the nodes may read",
    ),
    (
        "INTRADAY_EMR_SERVICE_ROLE",
        "service_role",
        "the EMR service role the stack makes",
    ),
    (
        "INTRADAY_EMR_INSTANCE_PROFILE",
        "job_flow_role",
        "the nodes' instance profile the stack makes",
    ),
    (
        "INTRADAY_EMR_SECURITY_CONFIGURATION",
        "security_configuration",
        "the EMR security configuration the stack makes",
    ),
    (
        "INTRADAY_EMR_LOG_URI",
        "log_uri",
        "EmrLogUri, which the nodes may write",
    ),
];

/// Refuses EmrParams that set what the stack sets, naming the key and the stack's setting.
/// `hbase_root` is the exception: it was always overridden, and local params name one.
fn refuse_what_the_stack_sets(
    text: &str,
    source: &str,
    from_stack: &[(&str, &str, String)],
) -> Result<(), LaunchError> {
    let Ok(serde_json::Value::Object(params)) = serde_json::from_str::<serde_json::Value>(text)
    else {
        // Not an object: with_overrides says what is wrong with it.
        return Ok(());
    };
    for (key, what, value) in from_stack {
        if *key == "hbase_root" {
            continue;
        }
        if params.get(*key).is_some_and(|v| !v.is_null()) {
            return Err(LaunchError::InvalidSetting {
                key: (*key).to_owned(),
                source_name: source.to_owned(),
                reason: format!(
                    "the stack sets it ({what}: {value}); remove it from EmrParams, or the \
                     clusters would run with a role, configuration or log place the stack did \
                     not make or grant"
                ),
            });
        }
    }
    Ok(())
}

/// The cluster template with the environment's overrides, from the launcher's variables
/// (`var` looks one up): `INTRADAY_EMR_PARAMS` (the stack's `EmrParams`) holds the
/// environment's settings, a JSON object or `@<path>` of a file holding one
/// (`infra/emr/params/<env>.json`); then the stack's own names win, because they name this
/// account's resources. `intradayctl local demo` builds its launcher through here too.
pub fn cluster_template(
    var: impl Fn(&str) -> Option<String>,
) -> Result<ClusterTemplate, LaunchError> {
    let mut template = ClusterTemplate::parse(DEFAULT_TEMPLATE, "infra/emr/cluster.json")?;
    let from_stack: Vec<(&str, &str, String)> = FROM_STACK
        .iter()
        .filter_map(|(name, key, what)| {
            var(name)
                .filter(|v| !v.is_empty())
                .map(|value| (*key, *what, value))
        })
        .collect();
    if let Some(params) = var("INTRADAY_EMR_PARAMS").filter(|p| !p.trim().is_empty()) {
        let (text, source) = match params.strip_prefix('@') {
            Some(path) => (
                std::fs::read_to_string(path).map_err(|e| LaunchError::Template {
                    source_name: path.to_owned(),
                    reason: format!("cannot read it: {e}"),
                })?,
                path.to_owned(),
            ),
            None => (
                params,
                "INTRADAY_EMR_PARAMS (the stack's EmrParams)".to_owned(),
            ),
        };
        refuse_what_the_stack_sets(&text, &source, &from_stack)?;
        template = template.with_overrides(&text, &source)?;
    }
    let stack: serde_json::Map<String, serde_json::Value> = from_stack
        .iter()
        .map(|(key, _, value)| ((*key).to_owned(), serde_json::Value::String(value.clone())))
        .collect();
    if !stack.is_empty() {
        template = template.with_overrides(
            &serde_json::Value::Object(stack).to_string(),
            "the stack's environment",
        )?;
    }
    if let Some(artifacts) = var("INTRADAY_EMR_ARTIFACTS").filter(|v| !v.is_empty()) {
        template.check_artifacts_under(&artifacts)?;
    }
    Ok(template)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<ClusterTemplate, LaunchError> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        cluster_template(|name| vars.get(name).cloned())
    }

    const STACK: &[(&str, &str)] = &[
        ("INTRADAY_EMR_SERVICE_ROLE", "intraday-emr-service-role"),
        ("INTRADAY_EMR_INSTANCE_PROFILE", "intraday-emr-nodes"),
        ("INTRADAY_EMR_SECURITY_CONFIGURATION", "intraday-emr"),
        ("INTRADAY_EMR_LOG_URI", "s3://logs/emr/"),
    ];

    #[test]
    fn the_stacks_roles_configuration_and_logs_reach_the_cluster() {
        let template = from(STACK).expect("template");
        assert_eq!(
            template.service_role.as_deref(),
            Some("intraday-emr-service-role")
        );
        assert_eq!(
            template.job_flow_role.as_deref(),
            Some("intraday-emr-nodes")
        );
        assert_eq!(
            template.security_configuration.as_deref(),
            Some("intraday-emr")
        );
        assert_eq!(template.log_uri.as_deref(), Some("s3://logs/emr/"));
    }

    #[test]
    fn params_naming_what_the_stack_sets_are_refused_naming_the_key() {
        for (key, value) in [
            ("service_role", "EMR_DefaultRole_V2"),
            ("job_flow_role", "someone-elses-profile"),
            ("security_configuration", "unencrypted"),
            ("log_uri", "s3://elsewhere/"),
        ] {
            let params = serde_json::json!({ key: value }).to_string();
            let vars: Vec<(&str, &str)> = STACK
                .iter()
                .copied()
                .chain([("INTRADAY_EMR_PARAMS", params.as_str())])
                .collect();
            let refused = from(&vars).expect_err(key).to_string();
            assert!(refused.contains(&format!("`{key}`")), "{refused}");
            assert!(refused.contains("the stack sets it"), "{refused}");
        }
        // Without the stack's setting (a file on a laptop), the file's value stands.
        let own = from(&[("INTRADAY_EMR_PARAMS", r#"{"log_uri": "s3://mine/logs/"}"#)])
            .expect("template");
        assert_eq!(own.log_uri.as_deref(), Some("s3://mine/logs/"));
    }

    #[test]
    fn artifacts_outside_the_stacks_prefix_are_refused() {
        let sum = "ab".repeat(32);
        let params = |install: &str, driver: &str| {
            serde_json::json!({
                "extractor_install_from": install,
                "extractor_sha256": sum,
                "spark_driver_install_from": driver,
                "spark_driver_sha256": sum,
                "bootstrap_script": "s3://artifacts/emr/bootstrap.sh",
                "dks_url": "https://dks:8443",
                "dks_tls_secret": "/intraday/dks",
            })
            .to_string()
        };
        let inside = params(
            "s3://artifacts/emr/intraday-extractor",
            "s3://artifacts/emr/intraday_spark.py",
        );
        from(&[
            ("INTRADAY_EMR_PARAMS", inside.as_str()),
            ("INTRADAY_EMR_ARTIFACTS", "s3://artifacts/emr/"),
        ])
        .expect("inside the prefix");
        for (key, outside) in [
            (
                "extractor_install_from",
                params(
                    "s3://elsewhere/intraday-extractor",
                    "s3://artifacts/emr/intraday_spark.py",
                ),
            ),
            (
                "spark_driver_install_from",
                params(
                    "s3://artifacts/emr/intraday-extractor",
                    "s3://elsewhere/intraday_spark.py",
                ),
            ),
        ] {
            let refused = from(&[
                ("INTRADAY_EMR_PARAMS", outside.as_str()),
                ("INTRADAY_EMR_ARTIFACTS", "s3://artifacts/emr/"),
            ])
            .expect_err("outside")
            .to_string();
            assert!(refused.contains(&format!("`{key}`")), "{refused}");
            assert!(refused.contains("EmrArtifactsS3Uri"), "{refused}");
        }
    }
}
