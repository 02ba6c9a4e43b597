//! The cluster template (`infra/emr/cluster.json`), its per-environment overrides
//! (`infra/emr/params/<env>.json`) and the `RunJobFlow` request built from them. Pure: no AWS.

use std::collections::BTreeMap;

use intraday_aws::emr::{
    BootstrapSpec, ClusterRequest, ConfigurationSpec, InstanceGroup, StepSpec,
};
use intraday_core::S3Uri;
use intraday_events::LaunchRequested;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::LaunchError;

/// The template shipped with the launcher; an environment changes it only through overrides.
pub const DEFAULT_TEMPLATE: &str = include_str!("../../../infra/emr/cluster.json");

pub use intraday_aws::emr::{TAG_CORRELATION_ID, TAG_MANAGED_BY};
pub const STEP_NAME: &str = "intraday-extract";
/// EMR's limit on the total length of a step's `HadoopJarStep` strings.
pub const MAX_STEP_CHARS: usize = 10_240;
const MAX_CORE_INSTANCES: i32 = 50;

/// What an environment may set. Every key is a field of the template; anything else in a
/// parameters file is refused, naming it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTemplate {
    pub name: String,
    pub release_label: String,
    pub log_uri: Option<String>,
    pub applications: Vec<String>,
    pub master_instance_type: String,
    pub core_instance_type: String,
    pub core_instance_count: i32,
    pub subnet_id: Option<String>,
    pub security_configuration: Option<String>,
    pub service_role: Option<String>,
    pub job_flow_role: Option<String>,
    /// The primary's HBase root, which the replica reads.
    pub hbase_root: String,
    /// Where the bootstrap action copies the extractor binary from (`s3://`); with
    /// `bootstrap_script`, installs it on every node.
    pub extractor_install_from: Option<String>,
    #[serde(default)]
    pub bootstrap_script: Option<String>,
    pub extractor_path: String,
    /// Extra arguments for every extraction (the DKS or KMS settings).
    pub extractor_args: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

impl ClusterTemplate {
    pub fn parse(text: &str, source_name: &str) -> Result<Self, LaunchError> {
        let template: Self = serde_json::from_str(text).map_err(|e| LaunchError::Template {
            source_name: source_name.to_owned(),
            reason: e.to_string(),
        })?;
        template.validate(source_name)?;
        Ok(template)
    }

    /// Applies an environment's overrides: a JSON object whose keys are template fields.
    pub fn with_overrides(self, overrides: &str, source_name: &str) -> Result<Self, LaunchError> {
        let overrides: serde_json::Map<String, Value> =
            serde_json::from_str(overrides).map_err(|e| LaunchError::Template {
                source_name: source_name.to_owned(),
                reason: format!("overrides must be a JSON object: {e}"),
            })?;
        let mut merged = serde_json::to_value(&self).map_err(|e| LaunchError::Template {
            source_name: source_name.to_owned(),
            reason: e.to_string(),
        })?;
        let fields = merged
            .as_object_mut()
            .ok_or_else(|| LaunchError::Template {
                source_name: source_name.to_owned(),
                reason: "the template is not an object".to_owned(),
            })?;
        for (key, value) in overrides {
            if !fields.contains_key(&key) {
                let mut allowed: Vec<&str> = fields.keys().map(String::as_str).collect();
                allowed.sort_unstable();
                return Err(LaunchError::UnknownOverride {
                    key,
                    source_name: source_name.to_owned(),
                    allowed: allowed.join(", "),
                });
            }
            fields.insert(key, value);
        }
        let template: Self = serde_json::from_value(merged).map_err(|e| LaunchError::Template {
            source_name: source_name.to_owned(),
            reason: e.to_string(),
        })?;
        template.validate(source_name)?;
        Ok(template)
    }

    fn validate(&self, source_name: &str) -> Result<(), LaunchError> {
        let bad = |key: &str, reason: String| LaunchError::InvalidSetting {
            key: key.to_owned(),
            source_name: source_name.to_owned(),
            reason,
        };
        if self.name.is_empty() || self.name.len() > 256 || self.name.chars().any(char::is_control)
        {
            return Err(bad("name", "use 1 to 256 printable characters".into()));
        }
        let release_ok = self
            .release_label
            .strip_prefix("emr-")
            .map(|v| {
                let parts: Vec<&str> = v.split('.').collect();
                parts.len() == 3
                    && parts
                        .iter()
                        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                    && parts[0].parse::<u32>().is_ok_and(|major| major >= 5)
            })
            .unwrap_or(false);
        if !release_ok {
            return Err(bad(
                "release_label",
                format!(
                    "`{}` is not an EMR release like emr-6.15.0 (5.x or later: read replicas need 5.7.0)",
                    self.release_label
                ),
            ));
        }
        for (key, value) in [
            ("master_instance_type", &self.master_instance_type),
            ("core_instance_type", &self.core_instance_type),
        ] {
            let ok = value.split_once('.').is_some_and(|(family, size)| {
                !family.is_empty()
                    && !size.is_empty()
                    && value
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.')
            });
            if !ok {
                return Err(bad(
                    key,
                    format!("`{value}` is not an EC2 instance type like m5.xlarge"),
                ));
            }
        }
        if !(1..=MAX_CORE_INSTANCES).contains(&self.core_instance_count) {
            return Err(bad(
                "core_instance_count",
                format!(
                    "{} is out of range (1 to {MAX_CORE_INSTANCES})",
                    self.core_instance_count
                ),
            ));
        }
        if let Some(subnet) = &self.subnet_id {
            let ok = subnet.strip_prefix("subnet-").is_some_and(|id| {
                (8..=17).contains(&id.len()) && id.chars().all(|c| c.is_ascii_hexdigit())
            });
            if !ok {
                return Err(bad(
                    "subnet_id",
                    format!("`{subnet}` is not a subnet id like subnet-0abc1234"),
                ));
            }
        }
        for (key, value) in [
            ("log_uri", self.log_uri.as_deref()),
            ("hbase_root", Some(self.hbase_root.as_str())),
            (
                "extractor_install_from",
                self.extractor_install_from.as_deref(),
            ),
            ("bootstrap_script", self.bootstrap_script.as_deref()),
        ] {
            if let Some(uri) = value {
                S3Uri::parse(uri).map_err(|e| bad(key, e.to_string()))?;
            }
        }
        if !self.extractor_path.starts_with('/')
            || self.extractor_path.contains(char::is_whitespace)
        {
            return Err(bad(
                "extractor_path",
                "use an absolute path without spaces".into(),
            ));
        }
        if self.tags.len() > 40 {
            return Err(bad(
                "tags",
                "at most 40 tags; EMR allows 50 and we add our own".into(),
            ));
        }
        for (k, v) in &self.tags {
            if k == TAG_CORRELATION_ID || k == TAG_MANAGED_BY.0 {
                return Err(bad("tags", format!("`{k}` is set by the launcher itself")));
            }
            if k.is_empty() || k.len() > 128 || v.len() > 256 {
                return Err(bad(
                    "tags",
                    format!("tag `{k}`: keys take 1 to 128 characters, values up to 256"),
                ));
            }
        }
        Ok(())
    }

    /// The `RunJobFlow` request for one run: a read replica of the primary's HBase root,
    /// Glue as the Hive metastore, and one extractor step whose failure terminates the
    /// cluster (so a failed run never leaves a cluster running).
    pub fn request(&self, launch: &LaunchRequested) -> Result<ClusterRequest, LaunchError> {
        let mut args = vec![
            self.extractor_path.clone(),
            "--correlation-id".to_owned(),
            launch.correlation_id.to_string(),
            "--trigger-time-ms".to_owned(),
            launch.trigger_time_ms.to_string(),
            "--output".to_owned(),
            launch.output.to_string(),
            "--format".to_owned(),
            launch.format.as_str().to_owned(),
        ];
        for c in &launch.collections {
            args.push("--collection".to_owned());
            args.push(format!(
                "{}:{}:{}",
                c.collection,
                c.window.start_ms(),
                c.window.end_ms()
            ));
            if c.pii {
                args.push("--pii".to_owned());
                args.push(c.collection.name());
            }
        }
        args.extend(self.extractor_args.iter().cloned());
        let jar = "command-runner.jar".to_owned();
        let length = jar.len() + args.iter().map(String::len).sum::<usize>();
        if length > MAX_STEP_CHARS {
            return Err(LaunchError::StepTooLong {
                length,
                limit: MAX_STEP_CHARS,
            });
        }

        let mut request = self.base_request();
        request.steps = vec![StepSpec {
            name: STEP_NAME.into(),
            jar,
            args,
            action_on_failure: "TERMINATE_CLUSTER".into(),
        }];
        request
            .tags
            .insert(TAG_CORRELATION_ID.into(), launch.correlation_id.to_string());
        Ok(request)
    }

    /// A cluster with no steps that stays up, for an operator to investigate with; it is
    /// stopped by hand (`intradayctl cluster stop`).
    pub fn investigation_request(&self) -> ClusterRequest {
        let mut request = self.base_request();
        request.keep_alive = true;
        request
    }

    /// Everything but the steps: the read replica, Glue as the metastore, our tags.
    fn base_request(&self) -> ClusterRequest {
        let glue_factory =
            "com.amazonaws.glue.catalog.metastore.AWSGlueDataCatalogHiveClientFactory";
        let props = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let configurations = vec![
            ConfigurationSpec {
                classification: "hbase-site".into(),
                properties: props(&[("hbase.rootdir", &self.hbase_root)]),
            },
            ConfigurationSpec {
                classification: "hbase".into(),
                properties: props(&[
                    ("hbase.emr.storageMode", "s3"),
                    ("hbase.emr.readreplica.enabled", "true"),
                ]),
            },
            ConfigurationSpec {
                classification: "hive-site".into(),
                properties: props(&[("hive.metastore.client.factory.class", glue_factory)]),
            },
            ConfigurationSpec {
                classification: "spark-hive-site".into(),
                properties: props(&[("hive.metastore.client.factory.class", glue_factory)]),
            },
        ];
        let bootstrap_actions = match (&self.bootstrap_script, &self.extractor_install_from) {
            (Some(script), Some(binary)) => vec![BootstrapSpec {
                name: "install-extractor".into(),
                path: script.clone(),
                args: vec![binary.clone(), self.extractor_path.clone()],
            }],
            _ => vec![],
        };
        let mut tags = self.tags.clone();
        tags.insert(TAG_MANAGED_BY.0.into(), TAG_MANAGED_BY.1.into());
        ClusterRequest {
            name: self.name.clone(),
            release_label: self.release_label.clone(),
            log_uri: self.log_uri.clone(),
            applications: self.applications.clone(),
            instance_groups: vec![
                InstanceGroup {
                    role: "MASTER".into(),
                    instance_type: self.master_instance_type.clone(),
                    count: 1,
                    market: None,
                },
                InstanceGroup {
                    role: "CORE".into(),
                    instance_type: self.core_instance_type.clone(),
                    count: self.core_instance_count,
                    market: None,
                },
            ],
            subnet_id: self.subnet_id.clone(),
            keep_alive: false,
            configurations,
            bootstrap_actions,
            steps: vec![],
            tags,
            security_configuration: self.security_configuration.clone(),
            service_role: self.service_role.clone(),
            job_flow_role: self.job_flow_role.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use intraday_events::Message;

    fn launch() -> LaunchRequested {
        let text = include_str!("../../../events/samples/launch-requested.json");
        match Message::parse(text).expect("sample parses") {
            Message::LaunchRequested(l) => l,
            other => panic!("not a launch: {other:?}"),
        }
    }

    fn template() -> ClusterTemplate {
        ClusterTemplate::parse(DEFAULT_TEMPLATE, "infra/emr/cluster.json").expect("template")
    }

    #[test]
    fn every_shipped_parameters_file_applies() {
        for (name, text) in [
            (
                "local.json",
                include_str!("../../../infra/emr/params/local.json"),
            ),
            (
                "production.json",
                include_str!("../../../infra/emr/params/production.json"),
            ),
        ] {
            template()
                .with_overrides(text, name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn builds_a_read_replica_with_one_step_per_run_that_terminates_on_failure() {
        let request = template().request(&launch()).expect("request");
        assert!(!request.keep_alive);
        assert_eq!(request.steps.len(), 1);
        let step = &request.steps[0];
        assert_eq!(step.action_on_failure, "TERMINATE_CLUSTER");
        assert_eq!(
            step.args,
            [
                "/usr/local/bin/intraday-extractor",
                "--correlation-id",
                "scheduled-20240311-1030",
                "--trigger-time-ms",
                "1710153000000",
                "--output",
                "s3://intraday-output-123456789012-eu-west-2/data/",
                "--format",
                "parquet",
                "--collection",
                "db.core.claimant:1710149400001:1710153000000",
                "--pii",
                "db.core.claimant",
                "--collection",
                "db.core.contract:0:1710153000000",
            ]
        );
        let hbase = request
            .configurations
            .iter()
            .find(|c| c.classification == "hbase")
            .expect("hbase");
        assert_eq!(hbase.properties["hbase.emr.readreplica.enabled"], "true");
        let site = request
            .configurations
            .iter()
            .find(|c| c.classification == "hbase-site")
            .expect("site");
        assert_eq!(site.properties["hbase.rootdir"], "s3://ingest-hbase/hbase");
        assert_eq!(request.tags[TAG_CORRELATION_ID], "scheduled-20240311-1030");
        assert_eq!(request.tags["ManagedBy"], "intraday");
        assert_eq!(request.tags["Application"], "intraday");
    }

    #[test]
    fn overrides_are_allow_listed_and_checked() {
        let cases = [
            (
                r#"{"core_instance_count": 8, "subnet_id": "subnet-0abc1234"}"#,
                Ok(()),
            ),
            (
                r#"{"instance_count": 8}"#,
                Err(
                    "unknown override `instance_count` in env.json; allowed keys: applications, bootstrap_script, core_instance_count,",
                ),
            ),
            (
                r#"{"core_instance_count": 500}"#,
                Err(
                    "`core_instance_count` in env.json is not valid: 500 is out of range (1 to 50)",
                ),
            ),
            (
                r#"{"core_instance_count": "many"}"#,
                Err(
                    "env.json is not a valid cluster template: invalid type: string \"many\", expected i32",
                ),
            ),
            (
                r#"{"release_label": "emr-4.9.0"}"#,
                Err("`release_label` in env.json is not valid: `emr-4.9.0` is not an EMR release"),
            ),
            (
                r#"{"hbase_root": "s3://bucket/../x"}"#,
                Err("`hbase_root` in env.json is not valid: invalid S3 location"),
            ),
            (
                r#"{"subnet_id": "sg-123"}"#,
                Err("`subnet_id` in env.json is not valid: `sg-123` is not a subnet id"),
            ),
            (
                r#"{"tags": {"CorrelationId": "x"}}"#,
                Err(
                    "`tags` in env.json is not valid: `CorrelationId` is set by the launcher itself",
                ),
            ),
            (
                "[1]",
                Err("env.json is not a valid cluster template: overrides must be a JSON object"),
            ),
        ];
        for (overrides, want) in cases {
            match (template().with_overrides(overrides, "env.json"), want) {
                (Ok(_), Ok(())) => {}
                (Err(e), Err(prefix)) => {
                    assert!(e.to_string().starts_with(prefix), "{overrides}: {e}")
                }
                (got, want) => panic!("{overrides}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_step_longer_than_emr_allows_is_refused() {
        let mut launch = launch();
        let one = launch.collections[0].clone();
        for i in 0..300 {
            let mut c = one.clone();
            c.collection =
                intraday_core::Collection::new("core", &format!("table_{i}")).expect("valid");
            launch.collections.push(c);
        }
        let err = template().request(&launch).expect_err("too long");
        assert!(
            err.to_string()
                .contains("EMR allows 10240: launch fewer collections per run"),
            "{err}"
        );
    }
}
