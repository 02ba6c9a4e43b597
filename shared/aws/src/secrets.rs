//! Secrets Manager: the collections secret.

use intraday_core::{Collections, parse_collections_secret};

use crate::AwsError;
use crate::error::SdkResultExt;

#[derive(Debug, Clone)]
pub struct Secrets {
    client: aws_sdk_secretsmanager::Client,
}

impl Secrets {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }

    /// The secret's `SecretString`, by name or ARN.
    pub async fn string(&self, id: &str) -> Result<String, AwsError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .aws("GetSecretValue")?;
        out.secret_string()
            .map(str::to_owned)
            .ok_or_else(|| AwsError::Service {
                operation: "GetSecretValue",
                code: "NoSecretString".to_owned(),
                message: format!("secret `{id}` holds binary data, not a SecretString"),
                retryable: false,
            })
    }

    /// The collections the secret lists.
    pub async fn collections(&self, id: &str) -> Result<Collections, AwsError> {
        Ok(parse_collections_secret(&self.string(id).await?)?)
    }

    /// Sets the secret's value, creating the secret if it does not exist.
    pub async fn put(&self, id: &str, value: &str) -> Result<(), AwsError> {
        let updated = self
            .client
            .put_secret_value()
            .secret_id(id)
            .secret_string(value)
            .send()
            .await;
        match updated {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                self.client
                    .create_secret()
                    .name(id)
                    .secret_string(value)
                    .send()
                    .await
                    .aws("CreateSecret")?;
                Ok(())
            }
            Err(e) => Err(crate::error::from_sdk("PutSecretValue", e)),
        }
    }
}
