use intraday_aws::AwsError;
use intraday_core::CoreError;
use thiserror::Error;

/// Exit statuses, as the README lists them: scripts can tell a typo from a missing stack
/// from a run that is not there from AWS refusing.
pub mod exit {
    /// A service refused or failed, or a check found problems.
    pub const FAILURE: u8 = 1;
    /// The command line or its input is wrong (clap uses 2 for usage errors too).
    pub const USAGE: u8 = 2;
    /// AWS cannot be used as configured: credentials, region, profile, endpoint, stack.
    pub const CONFIGURATION: u8 = 3;
    /// What was named does not exist: a run, a job item.
    pub const NOT_FOUND: u8 = 4;
}

/// What a command can fail at; each message says what to do next.
#[derive(Debug, Error)]
pub enum CtlError {
    #[error(
        "stack `{stack}` was not found in {region}; deploy infra/template.yaml (infra/README.md) or pass --stack NAME"
    )]
    StackNotFound { stack: String, region: String },

    #[error("stack `{stack}` cannot be read: {source}")]
    Stack { stack: String, source: AwsError },

    #[error("stack `{stack}` has no output `{output}`; is it an Intraday stack?")]
    MissingOutput { stack: String, output: String },

    /// AWS cannot be used as configured; the message says how to fix it.
    #[error("{0}")]
    Config(String),

    #[error("cannot reach {endpoint} ({cause}); check --endpoint-url, the network and any proxy")]
    Unreachable { endpoint: String, cause: String },

    #[error("unknown queue `{name}`; use one of {known}")]
    UnknownQueue { name: String, known: String },

    #[error("{0}")]
    Invalid(String),

    #[error("{0}")]
    NotFound(String),

    #[error("the message does not match events/schemas/{schema}:\n  {errors}\nnothing was sent")]
    Schema { schema: String, errors: String },

    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },

    #[error(transparent)]
    Domain(#[from] CoreError),

    #[error(transparent)]
    Aws(#[from] AwsError),

    #[error("{0}")]
    Other(String),
}

impl CtlError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::StackNotFound { .. }
            | CtlError::Stack { .. }
            | CtlError::MissingOutput { .. }
            | CtlError::Config(_)
            | CtlError::Unreachable { .. } => exit::CONFIGURATION,
            CtlError::UnknownQueue { .. }
            | CtlError::Invalid(_)
            | CtlError::Schema { .. }
            | CtlError::Read { .. }
            | CtlError::Domain(_) => exit::USAGE,
            CtlError::NotFound(_) | CtlError::Aws(AwsError::JobNotFound { .. }) => exit::NOT_FOUND,
            CtlError::Aws(_) | CtlError::Other(_) => exit::FAILURE,
        }
    }

    /// A network failure anywhere says where it could not get to, in one line.
    pub fn for_people(self, endpoint: &str) -> Self {
        let transport = |e: &AwsError| match e {
            AwsError::Transport { message, .. } => Some(message.clone()),
            _ => None,
        };
        let cause = match &self {
            CtlError::Aws(e) | CtlError::Stack { source: e, .. } => transport(e),
            _ => None,
        };
        match cause {
            Some(cause) => CtlError::Unreachable {
                endpoint: endpoint.to_owned(),
                cause,
            },
            None => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_has_its_exit_status() {
        let cases = [
            (CtlError::Config("no region".into()), exit::CONFIGURATION),
            (
                CtlError::StackNotFound {
                    stack: "s".into(),
                    region: "eu-west-2".into(),
                },
                exit::CONFIGURATION,
            ),
            (CtlError::Invalid("bad".into()), exit::USAGE),
            (CtlError::NotFound("no run".into()), exit::NOT_FOUND),
            (
                CtlError::Aws(AwsError::Service {
                    operation: "Query",
                    code: "AccessDeniedException".into(),
                    message: "no".into(),
                    retryable: false,
                }),
                exit::FAILURE,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_code(), code, "{error}");
        }
    }

    #[test]
    fn a_network_failure_names_the_endpoint_in_one_line() {
        let e = CtlError::Aws(AwsError::Transport {
            operation: "DescribeStacks",
            message: "dispatch failure: io error: Connection refused (os error 111)".into(),
        })
        .for_people("http://127.0.0.1:9");
        assert_eq!(
            e.to_string(),
            "cannot reach http://127.0.0.1:9 (dispatch failure: io error: Connection refused (os error 111)); check --endpoint-url, the network and any proxy"
        );
        assert_eq!(e.exit_code(), exit::CONFIGURATION);
    }
}
