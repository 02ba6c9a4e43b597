//! Where a command finds AWS and Intraday's resources: the AWS CLI's `--region`, `--profile`
//! and `--endpoint-url`, and the stack's outputs (`--stack`, default `intraday`), so an
//! operator never types a queue URL.

use std::collections::BTreeMap;

use intraday_aws::{Aws, AwsSettings, JobStore, Queues, Secrets, Stacks};
use intraday_core::Collections;
use tokio::sync::OnceCell;

use crate::CtlError;

/// The services whose queues a command can name.
pub const QUEUES: [(&str, &str); 5] = [
    ("scheduler", "Scheduler"),
    ("launcher", "Launcher"),
    ("monitor", "Monitor"),
    ("tables", "Tables"),
    ("reaper", "Reaper"),
];

/// The EventBridge rules' dead-letter queues: `(name, stack output, the service whose queue
/// the rule feeds)`. Their messages are events the rule could not deliver; a redrive sends
/// them to that queue.
pub const RULE_DLQS: [(&str, &str, &str); 5] = [
    (
        "schedule-sun-fri-rule",
        "ScheduleSunFriRuleDlqUrl",
        "scheduler",
    ),
    ("schedule-sat-rule", "ScheduleSatRuleDlqUrl", "scheduler"),
    ("monitor-sweep-rule", "MonitorSweepRuleDlqUrl", "monitor"),
    ("emr-state-rule", "EmrStateRuleDlqUrl", "monitor"),
    ("emr-terminated-rule", "EmrTerminatedRuleDlqUrl", "reaper"),
];

/// What the stack says about this deployment.
#[derive(Debug, Clone)]
pub struct Resources {
    pub job_table: String,
    /// Service name → (queue URL, dead-letter queue URL).
    pub queues: BTreeMap<String, (String, String)>,
    /// Rule name → (the queue it feeds, its dead-letter queue URL); a stack older than these
    /// outputs has none.
    pub rule_dlqs: BTreeMap<String, (String, String)>,
    pub output_bucket: String,
    pub alerts_topic_arn: String,
    pub collections_secret: String,
    pub hbase_root: Option<String>,
    /// The catalog database the scheduled runs write to.
    pub database: String,
    /// The one catalog database a backfill may use (the scheduler refuses any other).
    pub backfill_database: String,
}

impl Resources {
    pub fn from_outputs(
        stack: &str,
        outputs: &BTreeMap<String, String>,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Self, CtlError> {
        let get = |name: &str| {
            outputs
                .get(name)
                .cloned()
                .ok_or_else(|| CtlError::MissingOutput {
                    stack: stack.to_owned(),
                    output: name.to_owned(),
                })
        };
        let mut queues = BTreeMap::new();
        for (service, output) in QUEUES {
            queues.insert(
                service.to_owned(),
                (
                    get(&format!("{output}QueueUrl"))?,
                    get(&format!("{output}DlqUrl"))?,
                ),
            );
        }
        let mut rule_dlqs = BTreeMap::new();
        for (rule, output, feeds) in RULE_DLQS {
            if let (Some(dlq), Some((url, _))) = (outputs.get(output), queues.get(feeds)) {
                rule_dlqs.insert(rule.to_owned(), (url.clone(), dlq.clone()));
            }
        }
        Ok(Self {
            job_table: get("JobTableName")?,
            queues,
            rule_dlqs,
            output_bucket: get("OutputBucketName")?,
            alerts_topic_arn: get("AlertsTopicArn")?,
            collections_secret: parameters
                .get("CollectionsSecretName")
                .cloned()
                .unwrap_or_else(|| "/intraday/collections".to_owned()),
            hbase_root: parameters
                .get("HBaseRootS3Uri")
                .cloned()
                .filter(|r| !r.is_empty()),
            database: parameters
                .get("GlueDatabaseName")
                .cloned()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| intraday_core::DatabaseName::DEFAULT.to_owned()),
            backfill_database: parameters
                .get("BackfillDatabaseName")
                .cloned()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "intraday_backfill".to_owned()),
        })
    }

    /// A queue and its dead-letter queue by service name (`monitor`), by a rule's name
    /// (`emr-state-rule`: the queue it feeds and its own dead-letter queue), or by a queue's
    /// own name (`intraday-monitor`).
    pub fn queue(&self, name: &str) -> Result<&(String, String), CtlError> {
        let all = || self.queues.iter().chain(self.rule_dlqs.iter());
        all()
            .find(|(n, _)| n.as_str() == name)
            .or_else(|| {
                all().find(|(_, (url, dlq))| {
                    url.ends_with(&format!("/{name}")) || dlq.ends_with(&format!("/{name}"))
                })
            })
            .map(|(_, urls)| urls)
            .ok_or_else(|| CtlError::UnknownQueue {
                name: name.to_owned(),
                known: all()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// AWS and the stack, loaded once per command.
pub struct Env {
    pub aws: Aws,
    pub stack: String,
    resources: OnceCell<Resources>,
}

/// The shared config and credentials files, where the AWS CLI looks for them.
fn profile_files() -> Vec<std::path::PathBuf> {
    let home = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_default();
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| home.join(".aws").join(default))
    };
    vec![
        file("AWS_CONFIG_FILE", "config"),
        file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
    ]
}

fn known_profiles() -> Vec<String> {
    let mut names: Vec<String> = profile_files()
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|text| profile_names(&text))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Profile names in an AWS config or credentials file: `[profile NAME]` or `[NAME]`
/// (`[default]` included; `[sso-session …]` and `[services …]` are not profiles).
pub fn profile_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let section = line.trim().strip_prefix('[')?.split(']').next()?.trim();
            let name = section
                .strip_prefix("profile ")
                .map(str::trim)
                .unwrap_or(section);
            let other = section.starts_with("sso-session ") || section.starts_with("services ");
            (!name.is_empty() && !other).then(|| name.to_owned())
        })
        .collect()
}

/// The AWS CLI's first-run answers, each its own line: what is missing and how to set it.
const NO_CREDENTIALS: &str = "no AWS credentials found: set AWS_PROFILE, run `aws configure` or `aws sso login`, or pass --endpoint-url for an emulator (with any AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)";
const NO_REGION: &str = "no AWS region: pass --region, set AWS_REGION, or set `region` in your profile (`aws configure`)";

impl Env {
    /// Loads AWS's configuration and checks, before any request, that it can be used: the
    /// profile exists, credentials can be found and a region is set.
    pub async fn new(settings: &AwsSettings, stack: &str) -> Result<Self, CtlError> {
        if let Some(profile) = &settings.profile {
            let known = known_profiles();
            if !known.iter().any(|p| p == profile) {
                return Err(CtlError::Config(format!(
                    "profile `{profile}` is not in {}; known profiles: {}",
                    profile_files()
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" or "),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        let aws = settings.load().await;
        if let Some(problem) = aws.credentials_problem().await {
            tracing::info!(%problem, "no credentials");
            return Err(CtlError::Config(NO_CREDENTIALS.to_owned()));
        }
        if aws.region().is_none() {
            return Err(CtlError::Config(NO_REGION.to_owned()));
        }
        Ok(Self {
            aws,
            stack: stack.to_owned(),
            resources: OnceCell::new(),
        })
    }

    pub async fn resources(&self) -> Result<&Resources, CtlError> {
        self.resources
            .get_or_try_init(|| async {
                let deployed = Stacks::new(self.aws.cloudformation())
                    .describe(&self.stack)
                    .await
                    .map_err(|source| {
                        // CloudFormation says ValidationError "Stack with id X does not exist".
                        if source.code() == Some("ValidationError")
                            && source.to_string().contains("does not exist")
                        {
                            CtlError::StackNotFound {
                                stack: self.stack.clone(),
                                region: self.aws.region().unwrap_or("?").to_owned(),
                            }
                        } else {
                            CtlError::Stack {
                                stack: self.stack.clone(),
                                source,
                            }
                        }
                    })?;
                Resources::from_outputs(&self.stack, &deployed.outputs, &deployed.parameters)
            })
            .await
    }

    pub async fn store(&self) -> Result<JobStore, CtlError> {
        Ok(JobStore::new(
            self.aws.dynamodb(),
            self.resources().await?.job_table.clone(),
        ))
    }

    pub fn queues(&self) -> Queues {
        Queues::new(self.aws.sqs())
    }

    /// The collections the stack's secret lists, and the entries it refuses.
    pub async fn collections(&self) -> Result<Collections, CtlError> {
        let secret = &self.resources().await?.collections_secret;
        Secrets::new(self.aws.secrets())
            .collections(secret)
            .await
            .map_err(|e| {
                CtlError::Other(format!(
                    "the collections secret `{secret}` cannot be used: {e}"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_read_as_the_aws_cli_names_them() {
        let text = "[default]\nregion = eu-west-2\n[profile ops]\nsso_session = x\n[ dev ]\n\
                    [sso-session x]\nsso_region = eu-west-2\n[services local]\n";
        assert_eq!(profile_names(text), ["default", "ops", "dev"]);
    }
}
