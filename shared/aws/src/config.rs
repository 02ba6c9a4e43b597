//! The one place an `SdkConfig` is built. Every service and command takes its clients from
//! here, so region, profile and endpoint override behave the same everywhere.

use std::net::IpAddr;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder};

use crate::form_encoding::SpacesAsPlus;
use crate::retry::DroppedConnection;

/// How to reach AWS: the AWS CLI's `--region`, `--profile` and `--endpoint-url`.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// Overrides every service's endpoint; falls back to `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// Fixed credentials (an emulator's, or a role session's); otherwise the default chain.
    pub static_credentials: Option<Credentials>,
    pub timeouts: Timeouts,
    /// The SDK's adaptive retry mode with 5 attempts instead of standard with 3: for
    /// readers a person waits on (the CLI, the demo's observer), where a transient failure
    /// should cost a pause, not the command. Services keep standard retries and let the
    /// queue redeliver.
    pub adaptive_retries: bool,
}

/// How long a request may take. The SDK sets no read or operation timeout of its own, so a
/// connection that is accepted and never answered would hold a handler (or the CLI) for as
/// long as it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Waiting for an answer; above SQS's longest long poll (20 s).
    pub read: Duration,
    /// All attempts of one operation, retries included; `None` leaves it unbounded.
    pub operation: Option<Duration>,
}

impl Default for Timeouts {
    /// An operation gives up after 25 s, below the functions' 30 s Lambda timeout, so a hung
    /// call fails the one message with an error naming it instead of killing the invocation.
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(30),
            operation: Some(Duration::from_secs(25)),
        }
    }
}

impl Timeouts {
    /// For the extractor's multipart uploads, whose parts may take longer than any fixed
    /// bound on a busy node: connect and read timeouts only.
    pub fn long_transfers() -> Self {
        Self {
            operation: None,
            ..Self::default()
        }
    }

    fn config(self) -> TimeoutConfig {
        let mut builder = TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .read_timeout(self.read);
        builder.set_operation_timeout(self.operation);
        builder.build()
    }
}

/// Credentials that never change: an access key, or a role session's key and token.
pub fn static_credentials(key: &str, secret: &str, session_token: Option<String>) -> Credentials {
    Credentials::new(key, secret, session_token, None, "intraday-static")
}

impl AwsSettings {
    /// Settings for an emulator: the endpoint, a region and throwaway credentials.
    pub fn emulator(endpoint_url: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            region: Some(region.into()),
            profile: None,
            endpoint_url: Some(endpoint_url.into()),
            static_credentials: Some(static_credentials("test", "test", None)),
            timeouts: Timeouts::default(),
            adaptive_retries: false,
        }
    }

    /// The endpoint in effect: the explicit one, else `AWS_ENDPOINT_URL`.
    pub fn effective_endpoint(&self) -> Option<String> {
        self.endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|url| !url.trim().is_empty())
    }

    pub async fn load(&self) -> Aws {
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).timeout_config(self.timeouts.config());
        if self.adaptive_retries {
            // https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html
            loader = loader.retry_config(RetryConfig::adaptive().with_max_attempts(5));
        }
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(credentials) = &self.static_credentials {
            loader = loader.credentials_provider(credentials.clone());
        }
        let endpoint = self.effective_endpoint();
        if let Some(url) = &endpoint {
            loader = loader.endpoint_url(url);
            if is_loopback(url) {
                loader = loader.http_client(loopback_http_client());
            }
        }
        Aws {
            sdk: loader.load().await,
            custom_endpoint: endpoint.is_some(),
            emulator: endpoint.as_deref().is_some_and(is_loopback),
        }
    }
}

/// A loaded configuration and what the clients built from it need to know about it.
#[derive(Debug, Clone)]
pub struct Aws {
    pub sdk: SdkConfig,
    custom_endpoint: bool,
    /// The endpoint is on loopback: an emulator, whose quirks the query-protocol clients
    /// work around (`form_encoding`).
    emulator: bool,
}

impl Aws {
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    pub fn sns(&self) -> aws_sdk_sns::Client {
        let mut config = aws_sdk_sns::config::Builder::from(&self.sdk);
        if self.emulator {
            config = config.interceptor(SpacesAsPlus);
        }
        aws_sdk_sns::Client::from_conf(config.build())
    }

    pub fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
    }

    /// S3 with path-style addressing when an endpoint is set: an emulator on an IP address
    /// has no `<bucket>.host` names to resolve.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk)
            .force_path_style(self.custom_endpoint)
            .retry_classifier(DroppedConnection)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    #[cfg(feature = "emr")]
    pub fn emr(&self) -> aws_sdk_emr::Client {
        aws_sdk_emr::Client::new(&self.sdk)
    }

    #[cfg(feature = "glue")]
    pub fn glue(&self) -> aws_sdk_glue::Client {
        aws_sdk_glue::Client::new(&self.sdk)
    }

    #[cfg(feature = "bus")]
    pub fn eventbridge(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.sdk)
    }

    #[cfg(feature = "lambda")]
    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::new(&self.sdk)
    }

    #[cfg(feature = "stack")]
    pub fn cloudformation(&self) -> aws_sdk_cloudformation::Client {
        let mut config = aws_sdk_cloudformation::config::Builder::from(&self.sdk);
        if self.emulator {
            config = config.interceptor(SpacesAsPlus);
        }
        aws_sdk_cloudformation::Client::from_conf(config.build())
    }

    pub fn sts(&self) -> aws_sdk_sts::Client {
        let mut config = aws_sdk_sts::config::Builder::from(&self.sdk);
        if self.emulator {
            config = config.interceptor(SpacesAsPlus);
        }
        aws_sdk_sts::Client::from_conf(config.build())
    }

    /// Who the credentials belong to: `GetCallerIdentity`'s ARN. It needs no permission, even
    /// under an explicit deny: https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html
    pub async fn caller_arn(&self) -> Result<String, crate::AwsError> {
        use crate::error::SdkResultExt;
        let out = self
            .sts()
            .get_caller_identity()
            .send()
            .await
            .aws("GetCallerIdentity")?;
        Ok(out.arn().unwrap_or_default().to_owned())
    }

    /// Whether requests go to an endpoint override (an emulator) rather than AWS.
    pub fn has_custom_endpoint(&self) -> bool {
        self.custom_endpoint
    }

    pub fn region(&self) -> Option<&str> {
        self.sdk.region().map(|r| r.as_ref())
    }

    /// Why no credentials can be had, before any request needs them; `None` when they can.
    /// The reason is the provider chain's own, on one line (it names a missing profile).
    pub async fn credentials_problem(&self) -> Option<String> {
        use aws_credential_types::provider::ProvideCredentials;
        let Some(provider) = self.sdk.credentials_provider() else {
            return Some("no credentials provider is configured".to_owned());
        };
        provider
            .provide_credentials()
            .await
            .err()
            .map(|e| crate::causes(&e))
    }
}

/// True when `url` points at this machine.
pub fn is_loopback(url: &str) -> bool {
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    let host = if let Some(bracketed) = host.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The SDK's default client honours `HTTP(S)_PROXY`; a proxy cannot reach our loopback, and
/// a forgotten `NO_PROXY` would send emulator traffic (and its credentials) to it.
fn loopback_http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .proxy_config(ProxyConfig::disabled());
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.build()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_loopback_endpoints() {
        for url in [
            "http://127.0.0.1:5000",
            "http://localhost:4566/",
            "https://[::1]:443/x",
            "127.0.0.2:9",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "https://sqs.eu-west-2.amazonaws.com",
            "http://10.0.0.1:5000",
            "http://[fe80::1]/",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}
