//! `local demo --enforce-iam`: moto server checks every request against IAM, and each service
//! calls AWS with session credentials from `sts:AssumeRole` into the role the template made
//! for it, as its Lambda function does.
//!
//! What moto 5.2.5 can and cannot evaluate is in docs/moto-iam.md. In short: it crashes on a
//! trust policy naming only a service principal, it cannot read the inline policies its own
//! CloudFormation stores, and it checks actions only (every non-S3 request is checked against
//! the resource `*`; conditions it cannot evaluate deny). So after the deploy each role is
//! made to trust the demo's user, and its policies are put again, from the template, in the
//! form moto evaluates (`roles::for_moto`): the same actions, nothing more.

use std::collections::BTreeMap;

use intraday_aws::{Aws, AwsSettings, Credentials, static_credentials};
use serde_json::json;

use super::roles;
use crate::CtlError;

/// The requests moto lets through before it checks IAM: the three that make the demo's user.
pub const FREE_REQUESTS: u32 = 3;

/// The demo's own user, which deploys the stack and seeds it, as a person with admin rights.
const USER: &str = "intraday-demo-admin";

fn failed(what: &str, why: &str) -> CtlError {
    CtlError::Other(format!("--enforce-iam: {what} failed: {why}"))
}

fn sdk_failed(what: &str, e: impl std::error::Error + 'static) -> CtlError {
    failed(what, &intraday_aws::causes(&e))
}

/// Makes the demo's user with moto's free requests (CreateUser, PutUserPolicy allowing
/// everything, CreateAccessKey) and returns its key.
pub async fn admin(endpoint: &str, region: &str) -> Result<Credentials, CtlError> {
    let aws = AwsSettings::emulator(endpoint, region).load().await;
    let iam = aws_sdk_iam::Client::new(&aws.sdk);
    iam.create_user()
        .user_name(USER)
        .send()
        .await
        .map_err(|e| sdk_failed("CreateUser", e))?;
    let everything = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    iam.put_user_policy()
        .user_name(USER)
        .policy_name("everything")
        .policy_document(everything.to_string())
        .send()
        .await
        .map_err(|e| sdk_failed("PutUserPolicy", e))?;
    let key = iam
        .create_access_key()
        .user_name(USER)
        .send()
        .await
        .map_err(|e| sdk_failed("CreateAccessKey", e))?;
    let key = key
        .access_key()
        .ok_or_else(|| failed("CreateAccessKey", "no key in the answer"))?;
    Ok(static_credentials(
        key.access_key_id(),
        key.secret_access_key(),
        None,
    ))
}

/// Each service's session credentials, by service name, after making its role assumable and
/// evaluable by moto. `role_name` gives a role's name from the service's.
pub async fn assume_service_roles(
    aws: &Aws,
    template: &serde_yaml::Value,
    role_name: impl Fn(&str) -> String,
) -> Result<BTreeMap<&'static str, Credentials>, CtlError> {
    let mut sessions = BTreeMap::new();
    for (logical, service) in roles::SERVICE_ROLES {
        let session = assume(aws, template, logical, &role_name(service), service).await?;
        sessions.insert(service, session);
    }
    Ok(sessions)
}

/// A session of the role the template calls `logical` (named `name` in IAM), after making
/// it trust the caller and putting its policies again in the form moto evaluates.
pub async fn assume(
    aws: &Aws,
    template: &serde_yaml::Value,
    logical: &str,
    name: &str,
    session: &str,
) -> Result<Credentials, CtlError> {
    let iam = aws_sdk_iam::Client::new(&aws.sdk);
    let me = aws
        .caller_arn()
        .await
        .map_err(|e| sdk_failed("GetCallerIdentity", e))?;
    let trust = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": me}, "Action": "sts:AssumeRole"}]});
    iam.update_assume_role_policy()
        .role_name(name)
        .policy_document(trust.to_string())
        .send()
        .await
        .map_err(|e| sdk_failed(&format!("UpdateAssumeRolePolicy on {name}"), e))?;
    for policy in roles::policies(template, logical) {
        iam.put_role_policy()
            .role_name(name)
            .policy_name(&policy.name)
            .policy_document(roles::for_moto(&policy).to_string())
            .send()
            .await
            .map_err(|e| sdk_failed(&format!("PutRolePolicy {} on {name}", policy.name), e))?;
    }
    let role = iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .map_err(|e| sdk_failed(&format!("GetRole {name}"), e))?;
    let arn = role.role().map(|r| r.arn().to_owned()).unwrap_or_default();
    let assumed = aws
        .sts()
        .assume_role()
        .role_arn(&arn)
        .role_session_name(format!("intraday-{session}"))
        .send()
        .await
        .map_err(|e| sdk_failed(&format!("AssumeRole {arn}"), e))?;
    let c = assumed
        .credentials()
        .ok_or_else(|| failed(&format!("AssumeRole {arn}"), "no credentials in the answer"))?;
    Ok(static_credentials(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
    ))
}
