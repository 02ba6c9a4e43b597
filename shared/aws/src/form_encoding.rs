//! Query-protocol bodies (CloudFormation, SNS, STS, IAM) with spaces written as `+`, for an
//! emulator on loopback.
//!
//! moto server re-encodes a form body from its parsed fields (Python's `urlencode`, space as
//! `+`) to check the signature, because its web framework hands it no raw body for a form
//! post. The SDK writes a space as `%20`, so under IAM enforcement every query-protocol
//! request with a space in a field (a template, an SNS message) fails with
//! SignatureDoesNotMatch. Both spellings are valid `application/x-www-form-urlencoded`
//! (https://url.spec.whatwg.org/#urlencoded-serializing writes `+`); the SDK signs after this
//! runs, so the signature covers the body as sent.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;

#[derive(Debug, Clone, Copy)]
pub(crate) struct SpacesAsPlus;

impl Intercept for SpacesAsPlus {
    fn name(&self) -> &'static str {
        "SpacesAsPlus"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let is_form = request
            .headers()
            .get("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        let Some(body) = request.body().bytes().filter(|_| is_form) else {
            return Ok(());
        };
        let Some(rewritten) = spaces_as_plus(body) else {
            return Ok(());
        };
        let length = rewritten.len();
        *request.body_mut() = SdkBody::from(rewritten);
        if request.headers().contains_key("content-length") {
            request
                .headers_mut()
                .insert("content-length", length.to_string());
        }
        Ok(())
    }
}

/// The body with each `%20` as `+`, or `None` when it has none. A `+` in a value is already
/// `%2B`, so nothing else changes meaning.
fn spaces_as_plus(body: &[u8]) -> Option<Vec<u8>> {
    if !body.windows(3).any(|w| w == b"%20") {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i..].starts_with(b"%20") {
            out.push(b'+');
            i += 3;
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::spaces_as_plus;

    #[test]
    fn spaces_become_plus_and_nothing_else_changes() {
        assert_eq!(
            spaces_as_plus(b"Action=Publish&Message=a%20b%2Bc%2520").as_deref(),
            Some(&b"Action=Publish&Message=a+b%2Bc%2520"[..])
        );
        assert_eq!(spaces_as_plus(b"Action=ListTopics"), None);
    }
}
