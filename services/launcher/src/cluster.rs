//! The cluster template (`infra/emr/cluster.json`), its per-environment overrides
//! (`infra/emr/params/<env>.json`) and the `RunJobFlow` request built from them. Pure: no AWS.

use std::collections::BTreeMap;

use intraday_aws::emr::{
    BootstrapSpec, ClusterRequest, ConfigurationSpec, InstanceGroup, SecurityGroups, StepSpec,
};
use intraday_core::S3Uri;
use intraday_events::LaunchRequested;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::LaunchError;

/// The template shipped with the launcher; an environment changes it only through overrides.
pub const DEFAULT_TEMPLATE: &str = include_str!("../../../infra/emr/cluster.json");

pub use intraday_aws::emr::{TAG_CORRELATION_ID, TAG_MANAGED_BY};
/// AmazonEMRServicePolicy_v2 acts only on resources carrying this tag; EMR passes a cluster's
/// tags on to what it creates for it.
/// https://docs.aws.amazon.com/emr/latest/ManagementGuide/emr-iam-role.html
pub const TAG_EMR_MANAGED_POLICIES: (&str, &str) =
    ("for-use-with-amazon-emr-managed-policies", "true");
pub const STEP_NAME: &str = "intraday-extract";
pub const BOOTSTRAP_NAME: &str = "intraday-node-setup";
/// EMR's limit on the total length of a step's `HadoopJarStep` strings.
pub const MAX_STEP_CHARS: usize = 10_240;
/// EMR's default quota of active instances per instance group (Service Quotas L-77B909B1,
/// adjustable): the ceiling for the core group. The original ran 175 core nodes.
/// <https://docs.aws.amazon.com/emr/latest/ManagementGuide/emr-service-limits-what-are.html>
pub const MAX_CORE_INSTANCES: i32 = 2000;
/// The most key ranges per collection the extractor's `--plan --ranges` takes.
pub const MAX_SPARK_RANGES: u64 = 4096;
/// Where the bootstrap action writes the data key service's client certificate, key and CA
/// (readable by the step's user only), and so where the step's arguments point.
pub const DKS_TLS_DIR: &str = "/etc/intraday/dks";
pub const DKS_CERT_FILE: &str = "client.crt";
pub const DKS_KEY_FILE: &str = "client.key";
pub const DKS_CA_FILE: &str = "ca.crt";
/// Extractor flags the launcher derives from `dks_url`; `extractor_args` may not set them.
const DERIVED_FLAGS: [&str; 4] = ["--dks-url", "--dks-cert", "--dks-key", "--dks-ca"];

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
    /// EMR-managed, service-access and additional security groups.
    #[serde(default)]
    pub security_groups: SecurityGroups,
    /// A custom AMI (`ami-…`) built from the release's Amazon Linux.
    #[serde(default)]
    pub custom_ami_id: Option<String>,
    pub security_configuration: Option<String>,
    pub service_role: Option<String>,
    pub job_flow_role: Option<String>,
    /// The primary's HBase root, which the replica reads.
    pub hbase_root: String,
    /// Where the bootstrap action copies the extractor binary from (`s3://`); set together
    /// with `extractor_sha256`, which every node checks before installing it.
    pub extractor_install_from: Option<String>,
    #[serde(default)]
    pub extractor_sha256: Option<String>,
    /// `infra/emr/bootstrap.sh` as uploaded (`s3://`): installs the extractor and the data
    /// key service's TLS material on every node.
    #[serde(default)]
    pub bootstrap_script: Option<String>,
    pub extractor_path: String,
    /// The data key service (`https://host[:port]`); the step is given its URL and the
    /// client certificate, key and CA the bootstrap action wrote under [`DKS_TLS_DIR`].
    #[serde(default)]
    pub dks_url: Option<String>,
    /// Secrets Manager secret (name or ARN) holding the DKS client's TLS material as JSON:
    /// `{"certificate": PEM, "private_key": PEM, "ca": PEM}`.
    #[serde(default)]
    pub dks_tls_secret: Option<String>,
    /// Extra arguments for every extraction (`--kms`, `--dks-max-attempts N`, …).
    pub extractor_args: Vec<String>,
    /// Where a run's extraction runs: `single-node` (the extractor on the primary),
    /// `spark` (a Spark application on the cluster's YARN, the driver fanning key ranges out
    /// to the core nodes) or `auto` (by the run's size, [`choose_engine`]). `spark` and
    /// `auto` need `Spark` among `applications`.
    #[serde(default)]
    pub engine: Engine,
    /// With `engine: auto`, a run whose collection-hours (the sum over its collections of
    /// the window's length in hours, each rounded up) reach this goes to Spark, a smaller
    /// one runs on the primary alone. Rule of thumb: an hourly run of a handful of
    /// collections is well within one node's extractor (services/extractor/BENCH.md measures
    /// about 100k records/s per core for 1 KB records, though on a real cluster one
    /// `hbase shell` scan per range is the ceiling); backfills spanning a day or more, or
    /// dozens of collections, spread their scans over the core nodes with Spark. A first
    /// run, whose window starts at 0, is always past it.
    #[serde(default = "default_spark_min_collection_hours")]
    pub spark_min_collection_hours: u32,
    /// Key ranges per core node: the Spark step passes the driver
    /// `--ranges core_instance_count × spark_ranges_per_core_node`, the number of ranges it
    /// splits every collection into. 16 keeps each vCPU of an m5.4xlarge busy.
    #[serde(default = "default_spark_ranges_per_core_node")]
    pub spark_ranges_per_core_node: u32,
    /// Where the bootstrap action copies the Spark driver (`intraday_spark.py`) from
    /// (`s3://`); set together with `spark_driver_sha256`, which every node checks before
    /// installing it at `spark_driver_path`. Unset, the driver comes the way the extractor
    /// does: when `extractor_install_from` is unset too, both are expected on the image (a
    /// custom AMI) at their paths; when the bootstrap action installs the extractor, the
    /// environment evidently has not baked its artifacts into the AMI, so an `engine` that
    /// may run Spark (`spark`, `auto`) without this is refused at start rather than failing
    /// its first large run.
    #[serde(default)]
    pub spark_driver_install_from: Option<String>,
    #[serde(default)]
    pub spark_driver_sha256: Option<String>,
    /// Where the driver is on the primary, where `spark-submit` reads it (client mode).
    #[serde(default = "default_spark_driver_path")]
    pub spark_driver_path: String,
    pub tags: BTreeMap<String, String>,
}

/// Where a run's extraction runs, as the template asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    SingleNode,
    Spark,
    /// By the run's size: see [`choose_engine`].
    #[default]
    Auto,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::SingleNode => "single-node",
            Engine::Spark => "spark",
            Engine::Auto => "auto",
        }
    }
}

/// Where one run's extraction runs, decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEngine {
    SingleNode,
    Spark,
}

impl RunEngine {
    pub fn as_str(self) -> &'static str {
        match self {
            RunEngine::SingleNode => "single-node",
            RunEngine::Spark => "spark",
        }
    }
}

fn default_spark_min_collection_hours() -> u32 {
    24
}

fn default_spark_ranges_per_core_node() -> u32 {
    16
}

fn default_spark_driver_path() -> String {
    "/usr/local/share/intraday/intraday_spark.py".to_owned()
}

const HOUR_MS: u64 = 3_600_000;

/// A run's size: the sum over its collections of the window's length in hours, each
/// rounded up (an hourly window that is one millisecond short still counts one hour).
pub fn collection_hours(launch: &LaunchRequested) -> u64 {
    launch
        .collections
        .iter()
        .map(|c| (c.window.end_ms() - c.window.start_ms()).div_ceil(HOUR_MS))
        .fold(0, u64::saturating_add)
}

/// Where a run goes: what the template asks for, or with `auto`, Spark from
/// `spark_min_collection_hours` collection-hours up and the primary alone below.
pub fn choose_engine(
    engine: Engine,
    spark_min_collection_hours: u32,
    launch: &LaunchRequested,
) -> RunEngine {
    match engine {
        Engine::SingleNode => RunEngine::SingleNode,
        Engine::Spark => RunEngine::Spark,
        Engine::Auto if collection_hours(launch) >= u64::from(spark_min_collection_hours) => {
            RunEngine::Spark
        }
        Engine::Auto => RunEngine::SingleNode,
    }
}

/// A file the bootstrap action downloads, checks against its SHA-256 and installs on every
/// node: the extractor, and the Spark driver. One shape, so both are checked alike.
struct Install<'a> {
    /// What it is, in messages.
    what: &'static str,
    from_key: &'static str,
    sum_key: &'static str,
    from: Option<&'a str>,
    sum: Option<&'a str>,
    /// Where it goes on the node.
    path: &'a str,
    /// Its name in dist/emr/, where ci/package.sh also writes its `.sha256`.
    packaged_as: &'static str,
    /// infra/emr/bootstrap.sh's flags for `from`, `sum` and `path`.
    flags: [&'static str; 3],
}

impl Install<'_> {
    fn validate(&self, source_name: &str) -> Result<(), LaunchError> {
        let bad = |key: &str, reason: String| LaunchError::InvalidSetting {
            key: key.to_owned(),
            source_name: source_name.to_owned(),
            reason,
        };
        let (what, from_key, sum_key, file) =
            (self.what, self.from_key, self.sum_key, self.packaged_as);
        match (self.from, self.sum) {
            (Some(_), None) => Err(bad(
                sum_key,
                format!(
                    "missing: `{from_key}` is set, and every node checks {what}'s SHA-256 before installing it (ci/package.sh writes it to dist/emr/{file}.sha256)"
                ),
            )),
            (None, Some(_)) => Err(bad(
                from_key,
                format!("missing: `{sum_key}` is set but not where to install {what} from"),
            )),
            (Some(_), Some(sum)) => {
                if sum.len() != 64
                    || !sum
                        .chars()
                        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
                {
                    return Err(bad(
                        sum_key,
                        format!("`{sum}` is not a SHA-256 in lower-case hex (64 characters)"),
                    ));
                }
                if sum.bytes().all(|b| b == b'0') {
                    return Err(bad(
                        sum_key,
                        format!(
                            "is all zeros, the placeholder of infra/emr/params/production.json; set {what}'s SHA-256 from dist/emr/{file}.sha256 (ci/package.sh writes it)"
                        ),
                    ));
                }
                Ok(())
            }
            (None, None) => Ok(()),
        }
    }
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
        let ec2_id = |key: &str, kind: &str, value: &str| {
            let ok = value
                .strip_prefix(kind)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|id| {
                    (8..=17).contains(&id.len())
                        && id
                            .chars()
                            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
                });
            if ok {
                Ok(())
            } else {
                Err(bad(
                    key,
                    format!("`{value}` is not an id like {kind}-0abc1234"),
                ))
            }
        };
        if let Some(subnet) = &self.subnet_id {
            ec2_id("subnet_id", "subnet", subnet)?;
        }
        if let Some(ami) = &self.custom_ami_id {
            ec2_id("custom_ami_id", "ami", ami)?;
        }
        let groups = &self.security_groups;
        for group in [&groups.primary, &groups.core, &groups.service_access]
            .into_iter()
            .flatten()
            .chain(&groups.additional)
        {
            ec2_id("security_groups", "sg", group)?;
        }
        // EMR takes the managed primary and core groups together, and at most four
        // additional groups per node type.
        // <https://docs.aws.amazon.com/emr/latest/ManagementGuide/emr-sg-specify.html>
        if groups.primary.is_some() != groups.core.is_some() {
            return Err(bad(
                "security_groups",
                "set `primary` and `core` together: EMR takes its managed groups as a pair".into(),
            ));
        }
        if groups.additional.len() > 4 {
            return Err(bad(
                "security_groups",
                format!(
                    "{} additional groups; EMR allows at most 4",
                    groups.additional.len()
                ),
            ));
        }
        for (key, value) in [
            ("log_uri", self.log_uri.as_deref()),
            ("hbase_root", Some(self.hbase_root.as_str())),
            (
                "extractor_install_from",
                self.extractor_install_from.as_deref(),
            ),
            ("bootstrap_script", self.bootstrap_script.as_deref()),
            (
                "spark_driver_install_from",
                self.spark_driver_install_from.as_deref(),
            ),
        ] {
            if let Some(uri) = value {
                S3Uri::parse(uri).map_err(|e| bad(key, e.to_string()))?;
            }
        }
        self.validate_node_setup(source_name)?;
        for (key, path) in [
            ("extractor_path", &self.extractor_path),
            ("spark_driver_path", &self.spark_driver_path),
        ] {
            if !path.starts_with('/') || path.contains(char::is_whitespace) {
                return Err(bad(key, "use an absolute path without spaces".into()));
            }
        }
        self.validate_engine(source_name)?;
        if self.tags.len() > 40 {
            return Err(bad(
                "tags",
                "at most 40 tags; EMR allows 50 and we add our own".into(),
            ));
        }
        for (k, v) in &self.tags {
            if k == TAG_CORRELATION_ID || k == TAG_MANAGED_BY.0 || k == TAG_EMR_MANAGED_POLICIES.0 {
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

    /// The nodes may read only under the stack's artifacts prefix: a bootstrap script or an
    /// extractor elsewhere would fail on every node, after the cluster started.
    pub fn check_artifacts_under(&self, artifacts: &str) -> Result<(), LaunchError> {
        for (key, value) in [
            ("bootstrap_script", &self.bootstrap_script),
            ("extractor_install_from", &self.extractor_install_from),
            ("spark_driver_install_from", &self.spark_driver_install_from),
        ] {
            if let Some(uri) = value.as_deref().filter(|u| !u.starts_with(artifacts)) {
                return Err(LaunchError::InvalidSetting {
                    key: key.to_owned(),
                    source_name: "INTRADAY_EMR_PARAMS (the stack's EmrParams)".to_owned(),
                    reason: format!(
                        "{uri} is outside {artifacts} (the stack's EmrArtifactsS3Uri), the only \
                         place the nodes may read; upload it there"
                    ),
                });
            }
        }
        Ok(())
    }

    /// What the bootstrap action installs on every node, each after checking its SHA-256.
    fn installs(&self) -> [Install<'_>; 2] {
        [
            Install {
                what: "the extractor",
                from_key: "extractor_install_from",
                sum_key: "extractor_sha256",
                from: self.extractor_install_from.as_deref(),
                sum: self.extractor_sha256.as_deref(),
                path: &self.extractor_path,
                packaged_as: "intraday-extractor",
                flags: ["--extractor", "--sha256", "--install-path"],
            },
            Install {
                what: "the Spark driver",
                from_key: "spark_driver_install_from",
                sum_key: "spark_driver_sha256",
                from: self.spark_driver_install_from.as_deref(),
                sum: self.spark_driver_sha256.as_deref(),
                path: &self.spark_driver_path,
                packaged_as: "intraday_spark.py",
                flags: [
                    "--spark-driver",
                    "--spark-driver-sha256",
                    "--spark-driver-path",
                ],
            },
        ]
    }

    /// An engine that may run Spark needs Spark on the cluster and the driver on its
    /// primary; refused here, at start, rather than when the first large run's step fails.
    fn validate_engine(&self, source_name: &str) -> Result<(), LaunchError> {
        let bad = |key: &str, reason: String| LaunchError::InvalidSetting {
            key: key.to_owned(),
            source_name: source_name.to_owned(),
            reason,
        };
        if self.spark_min_collection_hours == 0 {
            return Err(bad(
                "spark_min_collection_hours",
                "use 1 or more; to send every run to Spark, set `engine` to `spark`".into(),
            ));
        }
        if self.spark_ranges_per_core_node == 0 {
            return Err(bad(
                "spark_ranges_per_core_node",
                "use 1 or more: the driver splits every collection into core nodes × this many key ranges".into(),
            ));
        }
        if self.engine == Engine::SingleNode {
            return Ok(());
        }
        let engine = self.engine.as_str();
        if !self
            .applications
            .iter()
            .any(|a| a.eq_ignore_ascii_case("Spark"))
        {
            return Err(bad(
                "applications",
                format!(
                    "`Spark` is missing, and `engine` `{engine}` runs extractions as a Spark application on the cluster's YARN; add \"Spark\" to `applications`, or set `engine` to `single-node`"
                ),
            ));
        }
        if self.extractor_install_from.is_some() && self.spark_driver_install_from.is_none() {
            return Err(bad(
                "spark_driver_install_from",
                format!(
                    "missing: `engine` `{engine}` may run the Spark driver, and the bootstrap action installs the extractor but not the driver; upload dist/emr/intraday_spark.py and set `spark_driver_install_from` and `spark_driver_sha256` (from dist/emr/intraday_spark.py.sha256), or set `engine` to `single-node`"
                ),
            ));
        }
        Ok(())
    }

    /// The extractor and driver installs and the DKS material are all-or-nothing: a half-set
    /// install would start a cluster whose step cannot run, so it is refused naming the
    /// missing key.
    fn validate_node_setup(&self, source_name: &str) -> Result<(), LaunchError> {
        let bad = |key: &str, reason: String| LaunchError::InvalidSetting {
            key: key.to_owned(),
            source_name: source_name.to_owned(),
            reason,
        };
        for install in self.installs() {
            install.validate(source_name)?;
        }
        if self.bootstrap_script.is_none() {
            for (key, set) in [
                (
                    "extractor_install_from",
                    self.extractor_install_from.is_some(),
                ),
                (
                    "spark_driver_install_from",
                    self.spark_driver_install_from.is_some(),
                ),
                ("dks_tls_secret", self.dks_tls_secret.is_some()),
            ] {
                if set {
                    return Err(bad(
                        "bootstrap_script",
                        format!(
                            "missing: `{key}` needs the bootstrap action that puts it on every node (upload infra/emr/bootstrap.sh and give its s3:// location)"
                        ),
                    ));
                }
            }
        }
        if let Some(url) = &self.dks_url {
            let host = url.strip_prefix("https://").unwrap_or_default();
            if host.is_empty() || url.contains(char::is_whitespace) {
                return Err(bad("dks_url", format!("`{url}` is not an https:// URL")));
            }
            if self.dks_tls_secret.is_none() {
                return Err(bad(
                    "dks_tls_secret",
                    "missing: the data key service takes mutual TLS; name the secret holding the client certificate, key and CA".into(),
                ));
            }
        } else if self.dks_tls_secret.is_some() {
            return Err(bad(
                "dks_url",
                "missing: `dks_tls_secret` is set but not the data key service's URL".into(),
            ));
        }
        if let Some(secret) = &self.dks_tls_secret
            && (secret.is_empty() || secret.len() > 2048 || secret.contains(char::is_whitespace))
        {
            return Err(bad(
                "dks_tls_secret",
                "use a secret's name or ARN, without spaces".into(),
            ));
        }
        if let Some(flag) = self
            .extractor_args
            .iter()
            .find(|a| DERIVED_FLAGS.contains(&a.as_str()))
        {
            return Err(bad(
                "extractor_args",
                format!("`{flag}` comes from `dks_url` and `dks_tls_secret`; set those instead"),
            ));
        }
        if self.dks_url.is_some() && self.extractor_args.iter().any(|a| a == "--kms") {
            return Err(bad(
                "extractor_args",
                "`--kms` and `dks_url` both name the data keys' source; keep one".into(),
            ));
        }
        Ok(())
    }

    /// Where this run's extraction runs: [`choose_engine`] with the template's settings.
    pub fn engine_for(&self, launch: &LaunchRequested) -> RunEngine {
        choose_engine(self.engine, self.spark_min_collection_hours, launch)
    }

    /// How many key ranges the Spark driver splits every collection into.
    /// At most [`MAX_SPARK_RANGES`], the extractor's own limit; a collection never gets
    /// more ranges than it has regions either way.
    pub fn spark_ranges(&self) -> u64 {
        // Validation keeps the count in 1..=MAX_CORE_INSTANCES.
        (u64::try_from(self.core_instance_count).unwrap_or(1)
            * u64::from(self.spark_ranges_per_core_node))
        .min(MAX_SPARK_RANGES)
    }

    /// The `RunJobFlow` request for one run: a read replica of the primary's HBase root,
    /// Glue as the Hive metastore, and one extraction step whose failure terminates the
    /// cluster (so a failed run never leaves a cluster running). The step runs the extractor
    /// on the primary, or submits the Spark driver that runs it per key range on the core
    /// nodes ([`Self::engine_for`]); both go through `command-runner.jar`, which runs a
    /// command on the primary, `spark-submit` included.
    /// <https://docs.aws.amazon.com/emr/latest/ReleaseGuide/emr-spark-submit-step.html>
    pub fn request(&self, launch: &LaunchRequested) -> Result<ClusterRequest, LaunchError> {
        let extraction = self.extraction_args(launch);
        let args: Vec<String> = match self.engine_for(launch) {
            RunEngine::SingleNode => std::iter::once(self.extractor_path.clone())
                .chain(extraction)
                .collect(),
            RunEngine::Spark => [
                "spark-submit",
                "--master",
                "yarn",
                // Client mode runs the driver on the primary, in the step: it runs the
                // extractor there itself to plan the ranges and to write the manifest last,
                // and its log is the step's log.
                "--deploy-mode",
                "client",
                // The number of attempts of one task: a failed range is retried once, then
                // the application, and so the step, fails.
                // <https://spark.apache.org/docs/latest/configuration.html#scheduling>
                "--conf",
                "spark.task.maxFailures=2",
                // Two attempts of one range must never run at once: their part files share
                // names.
                "--conf",
                "spark.speculation=false",
                // A task's work runs outside the executor's JVM: an `hbase shell` (a JVM of
                // about 1 GiB) and the extractor (under 256 MiB) beside the Python worker.
                // YARN counts the container's whole process tree against its size (with
                // `yarn.nodemanager.pmem-check-enabled`, true in Hadoop's defaults), so each
                // executor takes one task, a small heap, and an overhead that holds them.
                // <https://spark.apache.org/docs/latest/running-on-yarn.html>
                "--conf",
                "spark.executor.cores=1",
                "--conf",
                "spark.executor.memory=512m",
                "--conf",
                "spark.executor.memoryOverhead=2g",
                &self.spark_driver_path,
                "--extractor",
                &self.extractor_path,
                "--ranges",
                &self.spark_ranges().to_string(),
                "--",
            ]
            .into_iter()
            .map(str::to_owned)
            .chain(extraction)
            .collect(),
        };
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

    /// The extractor's arguments for one run, without the extractor itself: the single-node
    /// step runs it with these, the Spark driver passes them on after `--`.
    fn extraction_args(&self, launch: &LaunchRequested) -> Vec<String> {
        let mut args = vec![
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
        if let Some(url) = &self.dks_url {
            args.extend([
                "--dks-url".to_owned(),
                url.clone(),
                "--dks-cert".to_owned(),
                format!("{DKS_TLS_DIR}/{DKS_CERT_FILE}"),
                "--dks-key".to_owned(),
                format!("{DKS_TLS_DIR}/{DKS_KEY_FILE}"),
                "--dks-ca".to_owned(),
                format!("{DKS_TLS_DIR}/{DKS_CA_FILE}"),
            ]);
        }
        args.extend(self.extractor_args.iter().cloned());
        args
    }

    /// A cluster with no steps that stays up, for an operator to investigate with; it is
    /// stopped by hand (`intradayctl cluster stop`).
    pub fn investigation_request(&self) -> ClusterRequest {
        let mut request = self.base_request();
        request.keep_alive = true;
        request
    }

    /// The arguments of `infra/emr/bootstrap.sh`, which validation made all-or-nothing.
    fn bootstrap_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for install in self.installs() {
            if let (Some(from), Some(sum)) = (install.from, install.sum) {
                let [from_flag, sum_flag, path_flag] = install.flags;
                args.extend(
                    [from_flag, from, sum_flag, sum, path_flag, install.path].map(str::to_owned),
                );
            }
        }
        if let Some(secret) = &self.dks_tls_secret {
            args.extend([
                "--dks-tls-secret".to_owned(),
                secret.clone(),
                "--tls-dir".to_owned(),
                DKS_TLS_DIR.to_owned(),
            ]);
        }
        args
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
        let bootstrap_actions = self
            .bootstrap_script
            .iter()
            .map(|script| BootstrapSpec {
                name: BOOTSTRAP_NAME.into(),
                path: script.clone(),
                args: self.bootstrap_args(),
            })
            .collect();
        let mut tags = self.tags.clone();
        tags.insert(TAG_MANAGED_BY.0.into(), TAG_MANAGED_BY.1.into());
        tags.insert(
            TAG_EMR_MANAGED_POLICIES.0.into(),
            TAG_EMR_MANAGED_POLICIES.1.into(),
        );
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
            security_groups: self.security_groups.clone(),
            custom_ami_id: self.custom_ami_id.clone(),
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
    use serde_json::json;

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

    /// production.json ships with a placeholder checksum the deploy replaces (infra/README.md).
    fn with_real_checksum(text: &str) -> String {
        text.replace(&"0".repeat(64), &"ab".repeat(32))
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
                .with_overrides(&with_real_checksum(text), name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn production_settings_reach_the_request_and_the_step() {
        let production = include_str!("../../../infra/emr/params/production.json");
        let refused = template()
            .with_overrides(production, "production.json")
            .expect_err("the placeholder checksum");
        assert!(
            refused.to_string().contains("`extractor_sha256`"),
            "{refused}"
        );

        let t = template()
            .with_overrides(&with_real_checksum(production), "production.json")
            .expect("production");
        let request = t.request(&launch()).expect("request");
        assert_eq!(request.release_label, "emr-7.12.0");
        assert_eq!(request.instance_groups[1].count, 175);
        assert_eq!(
            request.subnet_id.as_deref(),
            Some("subnet-0a1b2c3d4e5f60718")
        );
        assert_eq!(
            request.custom_ami_id.as_deref(),
            Some("ami-0a1b2c3d4e5f60719")
        );
        assert_eq!(
            request.security_groups.service_access.as_deref(),
            Some("sg-0a1b2c3d4e5f60003")
        );
        // The stack sets these (config::cluster_template), not the environment's file.
        assert_eq!(request.security_configuration, None);
        assert_eq!(request.log_uri, None);
        assert_eq!(request.service_role, None);
        assert_eq!(
            request.tags["for-use-with-amazon-emr-managed-policies"],
            "true"
        );
        let setup = &request.bootstrap_actions[0];
        assert_eq!(setup.name, BOOTSTRAP_NAME);
        assert_eq!(
            setup.args,
            [
                "--extractor",
                "s3://intraday-artifacts-123456789012-eu-west-2/emr/intraday-extractor",
                "--sha256",
                &"ab".repeat(32),
                "--install-path",
                "/usr/local/bin/intraday-extractor",
                "--spark-driver",
                "s3://intraday-artifacts-123456789012-eu-west-2/emr/intraday_spark.py",
                "--spark-driver-sha256",
                &"ab".repeat(32),
                "--spark-driver-path",
                "/usr/local/share/intraday/intraday_spark.py",
                "--dks-tls-secret",
                "/intraday/dks-client-tls",
                "--tls-dir",
                "/etc/intraday/dks",
            ]
        );
        // The sample's second collection has never run (its window starts at 0): Spark,
        // over 175 core nodes × 16 ranges.
        let args = &request.steps[0].args;
        assert_eq!(args[0], "spark-submit");
        assert_eq!(args[15], "/usr/local/share/intraday/intraday_spark.py");
        let after = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .map(|i| args[i + 1].as_str())
        };
        assert_eq!(after("--dks-url"), Some("https://dks.internal:8443"));
        assert_eq!(after("--dks-cert"), Some("/etc/intraday/dks/client.crt"));
        assert_eq!(after("--dks-key"), Some("/etc/intraday/dks/client.key"));
        assert_eq!(after("--dks-ca"), Some("/etc/intraday/dks/ca.crt"));
        assert_eq!(after("--dks-max-attempts"), Some("5"));
        assert_eq!(after("--ranges"), Some("2800"));
    }

    #[test]
    fn a_half_set_node_setup_is_refused_naming_the_missing_key() {
        let sum = "ab".repeat(32);
        let cases = [
            (
                json!({"extractor_install_from": "s3://artifacts/x", "bootstrap_script": "s3://artifacts/b.sh"}),
                "`extractor_sha256` in env.json is not valid: missing",
            ),
            (
                json!({"extractor_sha256": sum, "bootstrap_script": "s3://artifacts/b.sh"}),
                "`extractor_install_from` in env.json is not valid: missing",
            ),
            (
                json!({"extractor_install_from": "s3://artifacts/x", "extractor_sha256": sum}),
                "`bootstrap_script` in env.json is not valid: missing",
            ),
            (
                json!({"extractor_install_from": "s3://artifacts/x", "extractor_sha256": "ABC", "bootstrap_script": "s3://artifacts/b.sh"}),
                "`extractor_sha256` in env.json is not valid: `ABC` is not a SHA-256",
            ),
            (
                json!({"spark_driver_install_from": "s3://artifacts/d.py", "bootstrap_script": "s3://artifacts/b.sh"}),
                "`spark_driver_sha256` in env.json is not valid: missing: `spark_driver_install_from` is set, and every node checks the Spark driver's SHA-256",
            ),
            (
                json!({"spark_driver_sha256": sum, "bootstrap_script": "s3://artifacts/b.sh"}),
                "`spark_driver_install_from` in env.json is not valid: missing: `spark_driver_sha256` is set but not where to install the Spark driver from",
            ),
            (
                json!({"spark_driver_install_from": "s3://artifacts/d.py", "spark_driver_sha256": sum}),
                "`bootstrap_script` in env.json is not valid: missing: `spark_driver_install_from` needs the bootstrap action",
            ),
            (
                json!({"spark_driver_install_from": "s3://artifacts/d.py", "spark_driver_sha256": "AB".repeat(32), "bootstrap_script": "s3://artifacts/b.sh"}),
                "`spark_driver_sha256` in env.json is not valid: `ABAB",
            ),
            (
                json!({"spark_driver_install_from": "s3://artifacts/d.py", "spark_driver_sha256": "0".repeat(64), "bootstrap_script": "s3://artifacts/b.sh"}),
                "`spark_driver_sha256` in env.json is not valid: is all zeros, the placeholder of infra/emr/params/production.json; set the Spark driver's SHA-256 from dist/emr/intraday_spark.py.sha256",
            ),
            (
                json!({"spark_driver_install_from": "https://artifacts/d.py"}),
                "`spark_driver_install_from` in env.json is not valid:",
            ),
            (
                json!({"spark_driver_path": "intraday_spark.py"}),
                "`spark_driver_path` in env.json is not valid: use an absolute path without spaces",
            ),
            (
                json!({"dks_url": "https://dks:8443"}),
                "`dks_tls_secret` in env.json is not valid: missing",
            ),
            (
                json!({"dks_tls_secret": "s", "bootstrap_script": "s3://artifacts/b.sh"}),
                "`dks_url` in env.json is not valid: missing",
            ),
            (
                json!({"dks_url": "http://dks:8443", "dks_tls_secret": "s", "bootstrap_script": "s3://artifacts/b.sh"}),
                "`dks_url` in env.json is not valid: `http://dks:8443` is not an https:// URL",
            ),
            (
                json!({"extractor_args": ["--dks-url", "https://x"]}),
                "`extractor_args` in env.json is not valid: `--dks-url` comes from `dks_url`",
            ),
            (
                json!({"security_groups": {"primary": "sg-0abc12345"}}),
                "`security_groups` in env.json is not valid: set `primary` and `core` together",
            ),
            (
                json!({"security_groups": {"additional": ["sg-1", "sg-0abc12345"]}}),
                "`security_groups` in env.json is not valid: `sg-1` is not an id like sg-0abc1234",
            ),
            (
                json!({"custom_ami_id": "ami-XYZ"}),
                "`custom_ami_id` in env.json is not valid: `ami-XYZ` is not an id like ami-0abc1234",
            ),
        ];
        for (overrides, want) in cases {
            let err = template()
                .with_overrides(&overrides.to_string(), "env.json")
                .expect_err(&overrides.to_string());
            assert!(err.to_string().starts_with(want), "{overrides}: {err}");
        }
    }

    #[test]
    fn builds_a_read_replica_with_one_step_per_run_that_terminates_on_failure() {
        let single = template()
            .with_overrides(r#"{"engine": "single-node"}"#, "env.json")
            .expect("single node");
        let request = single.request(&launch()).expect("request");
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
                r#"{"core_instance_count": 2500}"#,
                Err(
                    "`core_instance_count` in env.json is not valid: 2500 is out of range (1 to 2000)",
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
                Err(
                    "`subnet_id` in env.json is not valid: `sg-123` is not an id like subnet-0abc1234",
                ),
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

    /// A launch of one collection per window, `[start, end)` in ms.
    fn launch_of(windows: &[(u64, u64)]) -> LaunchRequested {
        let mut launch = launch();
        let one = launch.collections[0].clone();
        launch.collections = windows
            .iter()
            .enumerate()
            .map(|(i, (start, end))| {
                let mut c = one.clone();
                c.collection =
                    intraday_core::Collection::new("core", &format!("table_{i}")).expect("valid");
                c.window = intraday_core::Window::new(*start, *end).expect("window");
                c
            })
            .collect();
        launch
    }

    #[test]
    fn the_spark_step_submits_the_driver_on_yarn_with_the_single_node_steps_extractor_args() {
        let launch = launch();
        let single = template()
            .with_overrides(r#"{"engine": "single-node"}"#, "env.json")
            .expect("single node")
            .request(&launch)
            .expect("request");
        let spark = template()
            .with_overrides(r#"{"engine": "spark"}"#, "env.json")
            .expect("spark")
            .request(&launch)
            .expect("request");
        assert_eq!(spark.steps.len(), 1);
        let step = &spark.steps[0];
        assert_eq!(step.name, STEP_NAME);
        assert_eq!(step.jar, "command-runner.jar");
        assert_eq!(step.action_on_failure, "TERMINATE_CLUSTER");
        assert_eq!(
            step.args[..21],
            [
                "spark-submit",
                "--master",
                "yarn",
                "--deploy-mode",
                "client",
                "--conf",
                "spark.task.maxFailures=2",
                "--conf",
                "spark.speculation=false",
                "--conf",
                "spark.executor.cores=1",
                "--conf",
                "spark.executor.memory=512m",
                "--conf",
                "spark.executor.memoryOverhead=2g",
                "/usr/local/share/intraday/intraday_spark.py",
                "--extractor",
                "/usr/local/bin/intraday-extractor",
                "--ranges",
                // The template's 2 core nodes × 16 ranges each.
                "32",
                "--",
            ]
        );
        assert_eq!(step.args[21..], single.steps[0].args[1..]);
        assert_eq!(single.steps[0].args[0], "/usr/local/bin/intraday-extractor");

        // 2000 core nodes × 16 would be more ranges than the extractor plans.
        let wide = template()
            .with_overrides(
                r#"{"engine": "spark", "core_instance_count": 2000}"#,
                "env.json",
            )
            .expect("spark");
        assert_eq!(wide.spark_ranges(), MAX_SPARK_RANGES);
    }

    #[test]
    fn auto_goes_to_spark_from_spark_min_collection_hours_each_window_rounded_up() {
        const H: u64 = 3_600_000;
        let t = 1_710_153_000_000;
        // Name, windows, collection-hours, where `auto` at 24 sends it.
        type Case<'a> = (&'a str, &'a [(u64, u64)], u64, RunEngine);
        let cases: &[Case] = &[
            ("an hourly run", &[(t - H, t)], 1, RunEngine::SingleNode),
            ("23 hours", &[(t - 23 * H, t)], 23, RunEngine::SingleNode),
            ("24 hours", &[(t - 24 * H, t)], 24, RunEngine::Spark),
            (
                "23 hours and 1 ms",
                &[(t - 23 * H - 1, t)],
                24,
                RunEngine::Spark,
            ),
            (
                "23 hourly collections",
                &[(t - H, t); 23],
                23,
                RunEngine::SingleNode,
            ),
            (
                "24 hourly collections",
                &[(t - H, t); 24],
                24,
                RunEngine::Spark,
            ),
            (
                "two windows just over 11 hours count 12 each",
                &[(t - 11 * H - 1, t), (t - 11 * H - 1, t)],
                24,
                RunEngine::Spark,
            ),
            (
                "a first run, from 0",
                &[(0, t)],
                t.div_ceil(H),
                RunEngine::Spark,
            ),
        ];
        for (name, windows, hours, want) in cases {
            let launch = launch_of(windows);
            assert_eq!(collection_hours(&launch), *hours, "{name}");
            assert_eq!(choose_engine(Engine::Auto, 24, &launch), *want, "{name}");
            assert_eq!(
                choose_engine(Engine::SingleNode, 24, &launch),
                RunEngine::SingleNode,
                "{name}"
            );
            assert_eq!(
                choose_engine(Engine::Spark, 24, &launch),
                RunEngine::Spark,
                "{name}"
            );
        }
        // The threshold is the template's, and the default template is `auto` at 24.
        let t24 = template();
        assert_eq!(t24.engine, Engine::Auto);
        assert_eq!(t24.spark_min_collection_hours, 24);
        let hourly = launch_of(&[(t - H, t); 3]);
        assert_eq!(t24.engine_for(&hourly), RunEngine::SingleNode);
        let lower = template()
            .with_overrides(r#"{"spark_min_collection_hours": 3}"#, "env.json")
            .expect("3 hours");
        assert_eq!(lower.engine_for(&hourly), RunEngine::Spark);
        assert_eq!(
            lower.request(&hourly).expect("request").steps[0].args[0],
            "spark-submit"
        );
    }

    #[test]
    fn an_engine_that_may_run_spark_needs_spark_and_a_driver() {
        let sum = "ab".repeat(32);
        let installs_the_extractor = json!({
            "extractor_install_from": "s3://artifacts/x",
            "extractor_sha256": sum,
            "bootstrap_script": "s3://artifacts/b.sh",
        });
        let with = |extra: Value| {
            let mut overrides = installs_the_extractor.clone();
            overrides
                .as_object_mut()
                .expect("object")
                .extend(extra.as_object().expect("object").clone());
            overrides
        };
        let refused = [
            (
                json!({"applications": ["Hadoop", "HBase"]}),
                "`applications` in env.json is not valid: `Spark` is missing, and `engine` `auto` runs extractions as a Spark application on the cluster's YARN; add \"Spark\" to `applications`, or set `engine` to `single-node`",
            ),
            (
                json!({"applications": ["Hadoop", "HBase"], "engine": "spark"}),
                "`applications` in env.json is not valid: `Spark` is missing, and `engine` `spark`",
            ),
            (
                installs_the_extractor.clone(),
                "`spark_driver_install_from` in env.json is not valid: missing: `engine` `auto` may run the Spark driver, and the bootstrap action installs the extractor but not the driver; upload dist/emr/intraday_spark.py",
            ),
            (
                with(json!({"engine": "spark"})),
                "`spark_driver_install_from` in env.json is not valid: missing: `engine` `spark`",
            ),
            (
                json!({"engine": "yarn"}),
                "env.json is not a valid cluster template: unknown variant `yarn`, expected one of `single-node`, `spark`, `auto`",
            ),
            (
                json!({"spark_ranges_per_core_node": 0}),
                "`spark_ranges_per_core_node` in env.json is not valid: use 1 or more",
            ),
            (
                json!({"spark_min_collection_hours": 0}),
                "`spark_min_collection_hours` in env.json is not valid: use 1 or more; to send every run to Spark, set `engine` to `spark`",
            ),
        ];
        for (overrides, want) in refused {
            let err = template()
                .with_overrides(&overrides.to_string(), "env.json")
                .expect_err(&overrides.to_string());
            assert!(err.to_string().starts_with(want), "{overrides}: {err}");
        }
        let accepted = [
            // Single node needs neither Spark nor the driver.
            json!({"applications": ["Hadoop", "HBase"], "engine": "single-node"}),
            with(json!({"engine": "single-node"})),
            // Nothing installed by the bootstrap action: both are on the image.
            json!({"engine": "spark", "custom_ami_id": "ami-0abc12345"}),
            // The driver downloaded, the extractor on the image.
            json!({
                "spark_driver_install_from": "s3://artifacts/intraday_spark.py",
                "spark_driver_sha256": sum,
                "bootstrap_script": "s3://artifacts/b.sh",
            }),
            with(json!({
                "spark_driver_install_from": "s3://artifacts/intraday_spark.py",
                "spark_driver_sha256": sum,
                "spark_ranges_per_core_node": 4,
            })),
        ];
        for overrides in accepted {
            template()
                .with_overrides(&overrides.to_string(), "env.json")
                .unwrap_or_else(|e| panic!("{overrides}: {e}"));
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
