//! Which IAM actions a request needs, told from the request itself: who signed it (the
//! access key id and the signing service in SigV4's credential scope) and the operation the
//! fault proxy names. Tests compare what each service needed with what its role grants.
//!
//! An operation needs the action of its own name, except where IAM names it otherwise:
//! https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html

/// `(access key id, signing service)` from a SigV4 `Authorization` header:
/// `AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request, …`.
pub fn signer(authorization: &str) -> Option<(String, String)> {
    let scope = authorization
        .split("Credential=")
        .nth(1)?
        .split([',', ' '])
        .next()?;
    let parts: Vec<&str> = scope.split('/').collect();
    match parts.as_slice() {
        [key, _date, _region, service, "aws4_request"] => {
            Some(((*key).to_owned(), (*service).to_owned()))
        }
        _ => None,
    }
}

/// The IAM actions one request needs. `tagged`: the request carries `x-amz-tagging`, which
/// needs `s3:PutObjectTagging` besides `s3:PutObject`.
pub fn actions_of(service: &str, operation: &str, body: &[u8], tagged: bool) -> Vec<String> {
    let action = |name: &str| format!("{service}:{name}");
    match (service, operation) {
        ("s3", "GetObject" | "HeadObject") => vec![action("GetObject")],
        ("s3", "ListObjectsV2" | "ListObjects") => vec![action("ListBucket")],
        ("s3", "PutObject" | "CreateMultipartUpload") if tagged => {
            vec![action("PutObject"), action("PutObjectTagging")]
        }
        (
            "s3",
            "PutObject" | "CreateMultipartUpload" | "UploadPart" | "CompleteMultipartUpload",
        ) => {
            vec![action("PutObject")]
        }
        ("s3", "DeleteObjects") => vec![action("DeleteObject")],
        ("s3", "HeadBucket") => vec![action("ListBucket")],
        ("sqs", "SendMessageBatch") => vec![action("SendMessage")],
        ("sqs", "DeleteMessageBatch") => vec![action("DeleteMessage")],
        ("sqs", "ChangeMessageVisibilityBatch") => vec![action("ChangeMessageVisibility")],
        // Each item needs its own action; the call itself needs none.
        ("dynamodb", "TransactWriteItems") => transact_actions(body),
        (_, "") => Vec::new(),
        _ => vec![action(operation)],
    }
}

fn transact_actions(body: &[u8]) -> Vec<String> {
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let mut actions: Vec<String> = request["TransactItems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_object()?.keys().next().cloned())
        .map(|kind| match kind.as_str() {
            "ConditionCheck" => "dynamodb:ConditionCheckItem".to_owned(),
            other => format!("dynamodb:{other}Item"),
        })
        .collect();
    actions.sort();
    actions.dedup();
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_signer_from_sigv4() {
        assert_eq!(
            signer(
                "AWS4-HMAC-SHA256 Credential=intraday-monitor/20261202/eu-west-2/elasticmapreduce/aws4_request, SignedHeaders=host, Signature=abc"
            ),
            Some(("intraday-monitor".to_owned(), "elasticmapreduce".to_owned()))
        );
        assert_eq!(signer("Bearer x"), None);
    }

    #[test]
    fn names_the_actions_iam_checks() {
        assert_eq!(actions_of("s3", "HeadObject", b"", false), ["s3:GetObject"]);
        assert_eq!(
            actions_of("s3", "CreateMultipartUpload", b"", true),
            ["s3:PutObject", "s3:PutObjectTagging"]
        );
        assert_eq!(
            actions_of(
                "dynamodb",
                "TransactWriteItems",
                br#"{"TransactItems":[{"Put":{}},{"Update":{}},{"ConditionCheck":{}},{"Put":{}}]}"#,
                false
            ),
            [
                "dynamodb:ConditionCheckItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem"
            ]
        );
        assert_eq!(
            actions_of("elasticmapreduce", "RunJobFlow", b"{}", false),
            ["elasticmapreduce:RunJobFlow"]
        );
    }
}
