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

/// The cluster template with the environment's overrides, from the launcher's variables
/// (`var` looks one up): `INTRADAY_EMR_PARAMS` (the stack's `EmrParams`) holds the
/// environment's settings, a JSON object or `@<path>` of a file holding one
/// (`infra/emr/params/<env>.json`); then the stack's own names win, because they name this
/// account's resources. `intradayctl local demo` builds its launcher through here too.
pub fn cluster_template(
    var: impl Fn(&str) -> Option<String>,
) -> Result<ClusterTemplate, LaunchError> {
    let mut template = ClusterTemplate::parse(DEFAULT_TEMPLATE, "infra/emr/cluster.json")?;
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
        template = template.with_overrides(&text, &source)?;
    }
    let mut stack = serde_json::Map::new();
    for (name, key) in [
        ("INTRADAY_HBASE_ROOT", "hbase_root"),
        ("INTRADAY_EMR_SERVICE_ROLE", "service_role"),
        ("INTRADAY_EMR_INSTANCE_PROFILE", "job_flow_role"),
    ] {
        if let Some(value) = var(name).filter(|v| !v.is_empty()) {
            stack.insert(key.to_owned(), serde_json::Value::String(value));
        }
    }
    if !stack.is_empty() {
        template = template.with_overrides(
            &serde_json::Value::Object(stack).to_string(),
            "the stack's environment",
        )?;
    }
    Ok(template)
}
