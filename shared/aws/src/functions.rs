//! Lambda: reads a deployed function's configuration, so the local pipeline and the tests
//! of the shipped zips run each `bootstrap` with exactly the environment the template gave it.

use std::collections::BTreeMap;

use crate::AwsError;
use crate::error::SdkResultExt;

/// What the stack configured for one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionInfo {
    pub name: String,
    pub arn: String,
    pub runtime: String,
    pub handler: String,
    pub architectures: Vec<String>,
    pub memory_mb: i32,
    pub timeout_s: i32,
    pub role: String,
    pub environment: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Functions {
    client: aws_sdk_lambda::Client,
}

impl Functions {
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        Self { client }
    }

    pub async fn configuration(&self, name: &str) -> Result<FunctionInfo, AwsError> {
        let out = self
            .client
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .aws("GetFunctionConfiguration")?;
        Ok(FunctionInfo {
            name: out.function_name().unwrap_or(name).to_owned(),
            arn: out.function_arn().unwrap_or_default().to_owned(),
            runtime: out
                .runtime()
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default(),
            handler: out.handler().unwrap_or_default().to_owned(),
            architectures: out
                .architectures()
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            memory_mb: out.memory_size().unwrap_or(128),
            timeout_s: out.timeout().unwrap_or(3),
            role: out.role().unwrap_or_default().to_owned(),
            environment: out
                .environment()
                .and_then(|e| e.variables())
                .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        })
    }
}
