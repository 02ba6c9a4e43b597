//! EMR: launching, finding and stopping read-replica clusters.
//!
//! `RunJobFlow` has no idempotency token, and `ListClusters` filters by state and creation
//! time only, not by tag; the launcher guards against double launches itself and finds its
//! clusters by the `CorrelationId` tag through `DescribeCluster`.

use std::collections::BTreeMap;

use aws_sdk_emr::primitives::DateTime;
use aws_sdk_emr::types::{
    ActionOnFailure, Application, BootstrapActionConfig, ClusterState, Configuration,
    HadoopJarStepConfig, InstanceGroupConfig, InstanceRoleType, JobFlowInstancesConfig, MarketType,
    ScriptBootstrapActionConfig, StepConfig, Tag,
};
use serde::{Deserialize, Serialize};

use crate::AwsError;
use crate::error::SdkResultExt;

/// One instance group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceGroup {
    /// `MASTER`, `CORE` or `TASK`.
    pub role: String,
    pub instance_type: String,
    pub count: i32,
    /// `ON_DEMAND` (default) or `SPOT`.
    #[serde(default)]
    pub market: Option<String>,
}

/// One `Configurations` entry: a classification and its properties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationSpec {
    pub classification: String,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapSpec {
    pub name: String,
    pub path: String,
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSpec {
    pub name: String,
    pub jar: String,
    pub args: Vec<String>,
    /// `TERMINATE_CLUSTER`, `CANCEL_AND_WAIT` or `CONTINUE`.
    pub action_on_failure: String,
}

/// The security groups of `JobFlowInstancesConfig`; unset ones are left to EMR.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroups {
    #[serde(default)]
    pub primary: Option<String>,
    #[serde(default)]
    pub core: Option<String>,
    #[serde(default)]
    pub service_access: Option<String>,
    #[serde(default)]
    pub additional: Vec<String>,
}

/// Everything `RunJobFlow` needs, as plain data the launcher builds and tests without AWS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRequest {
    pub name: String,
    pub release_label: String,
    pub log_uri: Option<String>,
    pub applications: Vec<String>,
    pub instance_groups: Vec<InstanceGroup>,
    pub subnet_id: Option<String>,
    /// Security groups: EMR-managed for the primary and core nodes, the service-access group
    /// (required in a private subnet), and extra groups added to every node.
    #[serde(default)]
    pub security_groups: SecurityGroups,
    /// A custom Amazon Linux AMI for every node, instead of EMR's default for the release.
    #[serde(default)]
    pub custom_ami_id: Option<String>,
    pub keep_alive: bool,
    pub configurations: Vec<ConfigurationSpec>,
    pub bootstrap_actions: Vec<BootstrapSpec>,
    pub steps: Vec<StepSpec>,
    pub tags: BTreeMap<String, String>,
    pub security_configuration: Option<String>,
    pub service_role: Option<String>,
    pub job_flow_role: Option<String>,
}

/// A cluster as `DescribeCluster` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    pub id: String,
    pub name: String,
    pub state: String,
    pub state_change_code: Option<String>,
    pub state_change_message: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub log_uri: Option<String>,
}

impl ClusterInfo {
    /// Whether Intraday started it: every one of its clusters carries `ManagedBy=intraday`.
    pub fn is_intraday(&self) -> bool {
        self.tags.get(TAG_MANAGED_BY.0).map(String::as_str) == Some(TAG_MANAGED_BY.1)
    }

    /// The run an Intraday cluster was launched for (its `CorrelationId` tag); `None` for a
    /// cluster that is not Intraday's, or one started by hand (`intradayctl cluster start`).
    pub fn intraday_run(&self) -> Option<&str> {
        self.tags
            .get(TAG_CORRELATION_ID)
            .filter(|_| self.is_intraday())
            .map(String::as_str)
    }
}

/// A cluster as `ListClusters` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSummary {
    pub id: String,
    pub name: String,
    pub state: String,
    pub created_ms: Option<u64>,
}

/// A step as `ListSteps` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInfo {
    pub id: String,
    pub name: String,
    pub state: String,
    pub failure_reason: Option<String>,
    pub log_file: Option<String>,
    /// The step's `HadoopJarStep` arguments.
    pub args: Vec<String>,
}

/// Tag every Intraday cluster carries, so the reaper and the monitor can tell ours apart.
pub const TAG_MANAGED_BY: (&str, &str) = ("ManagedBy", "intraday");
/// Tag naming the run, so a redelivered launch can find the cluster an earlier attempt made.
pub const TAG_CORRELATION_ID: &str = "CorrelationId";

/// States of a cluster that may still run steps.
pub const ACTIVE_STATES: [&str; 4] = ["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"];

/// Every cluster state `ListClusters` filters on, ended ones included.
pub const ALL_STATES: [&str; 7] = [
    "STARTING",
    "BOOTSTRAPPING",
    "RUNNING",
    "WAITING",
    "TERMINATING",
    "TERMINATED",
    "TERMINATED_WITH_ERRORS",
];

#[derive(Debug, Clone)]
pub struct Emr {
    client: aws_sdk_emr::Client,
}

impl Emr {
    pub fn new(client: aws_sdk_emr::Client) -> Self {
        Self { client }
    }

    /// Starts a cluster; returns its id.
    pub async fn run(&self, request: &ClusterRequest) -> Result<String, AwsError> {
        let groups = request
            .instance_groups
            .iter()
            .map(|g| {
                InstanceGroupConfig::builder()
                    .name(g.role.to_ascii_lowercase())
                    .instance_role(InstanceRoleType::from(g.role.as_str()))
                    .instance_type(&g.instance_type)
                    .instance_count(g.count)
                    .market(MarketType::from(g.market.as_deref().unwrap_or("ON_DEMAND")))
                    .build()
            })
            .collect();
        let instances = JobFlowInstancesConfig::builder()
            .set_instance_groups(Some(groups))
            .keep_job_flow_alive_when_no_steps(request.keep_alive)
            .termination_protected(false)
            .set_ec2_subnet_id(request.subnet_id.clone())
            .set_emr_managed_master_security_group(request.security_groups.primary.clone())
            .set_emr_managed_slave_security_group(request.security_groups.core.clone())
            .set_service_access_security_group(request.security_groups.service_access.clone())
            .set_additional_master_security_groups(
                Some(request.security_groups.additional.clone()).filter(|g| !g.is_empty()),
            )
            .set_additional_slave_security_groups(
                Some(request.security_groups.additional.clone()).filter(|g| !g.is_empty()),
            )
            .build();
        let steps = request
            .steps
            .iter()
            .map(|s| {
                StepConfig::builder()
                    .name(&s.name)
                    .action_on_failure(ActionOnFailure::from(s.action_on_failure.as_str()))
                    .hadoop_jar_step(
                        HadoopJarStepConfig::builder()
                            .jar(&s.jar)
                            .set_args(Some(s.args.clone()))
                            .build(),
                    )
                    .build()
            })
            .collect();
        // Repeat: none: no idempotency token, so the launcher sends it without SDK retries and
        // looks the cluster up by its CorrelationId tag after an unknown outcome.
        let out = self
            .client
            .run_job_flow()
            .name(&request.name)
            .release_label(&request.release_label)
            .set_log_uri(request.log_uri.clone())
            .set_applications(Some(
                request
                    .applications
                    .iter()
                    .map(|a| Application::builder().name(a).build())
                    .collect(),
            ))
            .instances(instances)
            .set_configurations(Some(
                request
                    .configurations
                    .iter()
                    .map(|c| {
                        Configuration::builder()
                            .classification(&c.classification)
                            .set_properties(Some(c.properties.clone().into_iter().collect()))
                            .build()
                    })
                    .collect(),
            ))
            .set_bootstrap_actions(Some(
                request
                    .bootstrap_actions
                    .iter()
                    .map(|b| {
                        BootstrapActionConfig::builder()
                            .name(&b.name)
                            .script_bootstrap_action(
                                ScriptBootstrapActionConfig::builder()
                                    .path(&b.path)
                                    .set_args(Some(b.args.clone()))
                                    .build(),
                            )
                            .build()
                    })
                    .collect(),
            ))
            .set_steps(Some(steps))
            .set_tags(Some(
                request
                    .tags
                    .iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .set_custom_ami_id(request.custom_ami_id.clone())
            .set_security_configuration(request.security_configuration.clone())
            .set_service_role(request.service_role.clone())
            .set_job_flow_role(request.job_flow_role.clone())
            // RunJobFlow has no idempotency token: a retry after a lost answer starts a
            // second cluster. The SDK must not retry it; the launcher looks the cluster up by
            // its CorrelationId tag on the next delivery instead.
            .customize()
            .config_override(
                aws_sdk_emr::config::Builder::default()
                    .retry_config(aws_smithy_types::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .aws("RunJobFlow")?;
        Ok(out.job_flow_id().unwrap_or_default().to_owned())
    }

    /// Ids of clusters in `states` created after `created_after_ms`, page after page.
    pub async fn list(
        &self,
        states: &[&str],
        created_after_ms: Option<u64>,
    ) -> Result<Vec<ClusterSummary>, AwsError> {
        let mut found = Vec::new();
        let mut marker = None;
        loop {
            let out = self
                .client
                .list_clusters()
                .set_cluster_states(Some(
                    states.iter().map(|s| ClusterState::from(*s)).collect(),
                ))
                .set_created_after(created_after_ms.map(|ms| DateTime::from_millis(ms as i64)))
                .set_marker(marker.take())
                .send()
                .await
                .aws("ListClusters")?;
            found.extend(out.clusters().iter().filter_map(|c| {
                let status = c.status();
                Some(ClusterSummary {
                    id: c.id()?.to_owned(),
                    name: c.name().unwrap_or_default().to_owned(),
                    state: status
                        .and_then(|s| s.state())
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    created_ms: status
                        .and_then(|s| s.timeline())
                        .and_then(|t| t.creation_date_time())
                        .and_then(|t| t.to_millis().ok())
                        .map(|ms| ms.max(0) as u64),
                })
            }));
            match out.marker() {
                Some(next) if !next.is_empty() => marker = Some(next.to_owned()),
                _ => return Ok(found),
            }
        }
    }

    /// The cluster carrying tag `key = value`, in any state, if any, among clusters created
    /// after `created_after_ms`. Ended ones count: a cluster an earlier attempt started may
    /// have run its steps and terminated before the caller looks (a redelivery after an
    /// outage), and launching again would extract the run twice.
    pub async fn find_by_tag(
        &self,
        key: &str,
        value: &str,
        created_after_ms: Option<u64>,
    ) -> Result<Option<String>, AwsError> {
        for cluster in self.list(&ALL_STATES, created_after_ms).await? {
            let info = self.describe(&cluster.id).await?;
            if info.tags.get(key).map(String::as_str) == Some(value) {
                return Ok(Some(cluster.id));
            }
        }
        Ok(None)
    }

    pub async fn describe(&self, cluster_id: &str) -> Result<ClusterInfo, AwsError> {
        let out = self
            .client
            .describe_cluster()
            .cluster_id(cluster_id)
            .send()
            .await
            .aws("DescribeCluster")?;
        let cluster = out.cluster().ok_or_else(|| AwsError::Service {
            operation: "DescribeCluster",
            code: "NoCluster".to_owned(),
            message: format!("DescribeCluster returned no cluster for {cluster_id}"),
            retryable: false,
        })?;
        let status = cluster.status();
        let reason = status.and_then(|s| s.state_change_reason());
        Ok(ClusterInfo {
            id: cluster.id().unwrap_or(cluster_id).to_owned(),
            name: cluster.name().unwrap_or_default().to_owned(),
            state: status
                .and_then(|s| s.state())
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            state_change_code: reason.and_then(|r| r.code()).map(|c| c.as_str().to_owned()),
            state_change_message: reason.and_then(|r| r.message()).map(str::to_owned),
            tags: cluster
                .tags()
                .iter()
                .filter_map(|t| {
                    Some((
                        t.key()?.to_owned(),
                        t.value().unwrap_or_default().to_owned(),
                    ))
                })
                .collect(),
            log_uri: cluster.log_uri().map(str::to_owned),
        })
    }

    pub async fn steps(&self, cluster_id: &str) -> Result<Vec<StepInfo>, AwsError> {
        let mut found = Vec::new();
        let mut marker = None;
        loop {
            let out = self
                .client
                .list_steps()
                .cluster_id(cluster_id)
                .set_marker(marker.take())
                .send()
                .await
                .aws("ListSteps")?;
            found.extend(out.steps().iter().map(|s| {
                let status = s.status();
                let failure = status.and_then(|st| st.failure_details());
                StepInfo {
                    id: s.id().unwrap_or_default().to_owned(),
                    name: s.name().unwrap_or_default().to_owned(),
                    state: status
                        .and_then(|st| st.state())
                        .map(|st| st.as_str().to_owned())
                        .unwrap_or_default(),
                    failure_reason: failure
                        .and_then(|f| f.reason().or(f.message()))
                        .map(str::to_owned),
                    log_file: failure.and_then(|f| f.log_file()).map(str::to_owned),
                    args: s.config().map(|c| c.args().to_vec()).unwrap_or_default(),
                }
            }));
            match out.marker() {
                Some(next) if !next.is_empty() => marker = Some(next.to_owned()),
                _ => return Ok(found),
            }
        }
    }

    pub async fn terminate(&self, cluster_id: &str) -> Result<(), AwsError> {
        // Repeat: terminating an ending or ended cluster succeeds and changes nothing.
        self.client
            .terminate_job_flows()
            .job_flow_ids(cluster_id)
            .send()
            .await
            .aws("TerminateJobFlows")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(tags: &[(&str, &str)]) -> ClusterInfo {
        ClusterInfo {
            id: "j-1".into(),
            name: "n".into(),
            state: "RUNNING".into(),
            state_change_code: None,
            state_change_message: None,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            log_uri: None,
        }
    }

    #[test]
    fn an_intraday_cluster_is_told_by_its_tags() {
        let run = cluster(&[("ManagedBy", "intraday"), ("CorrelationId", "r-1")]);
        assert!(run.is_intraday());
        assert_eq!(run.intraday_run(), Some("r-1"));
        let by_hand = cluster(&[("ManagedBy", "intraday")]);
        assert!(by_hand.is_intraday());
        assert_eq!(by_hand.intraday_run(), None);
        // The HBase primary, or anyone else's cluster, even carrying a run's tag.
        let primary = cluster(&[("ManagedBy", "hbase"), ("CorrelationId", "r-1")]);
        assert!(!primary.is_intraday());
        assert_eq!(primary.intraday_run(), None);
        assert!(!cluster(&[]).is_intraday());
    }
}
