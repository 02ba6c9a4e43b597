//! The service roles as `infra/template.yaml` writes them, read from the template itself:
//! what each allows, and the same policies in the form moto server can evaluate.
//!
//! moto 5.2.5 checks a non-S3 request against the resource `*` and treats a statement whose
//! condition it cannot evaluate as a deny (docs/moto-iam.md). So for moto each statement keeps
//! its actions, its resource becomes `*` and its condition is dropped: moto then proves the
//! actions, and `services/intradayctl/tests/template_conditions.rs` checks the resources and
//! conditions against what the code sends.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use serde_yaml::Value;

/// Each service's role: its logical id in the template, and the service's name.
pub const SERVICE_ROLES: [(&str, &str); 5] = [
    ("SchedulerRole", "scheduler"),
    ("LauncherRole", "launcher"),
    ("MonitorRole", "monitor"),
    ("TableBuilderRole", "table-builder"),
    ("ReaperRole", "reaper"),
];

/// One inline policy of a role: its name and its `Allow` statements.
#[derive(Debug, Clone)]
pub struct RolePolicy {
    pub name: String,
    pub statements: Vec<Value>,
}

/// The template, parsed; `None` if it is not YAML (a build-time file, so a test catches it).
pub fn template(text: &str) -> Result<Value, String> {
    serde_yaml::from_str(text).map_err(|e| format!("infra/template.yaml is not valid YAML: {e}"))
}

/// The inline policies of `role` (a logical id), and those of any `AWS::IAM::Policy` in the
/// template attached to it. Statements under `!If` count with both branches: a test cannot
/// know which the stack takes, and granting either must be justified.
pub fn policies(template: &Value, role: &str) -> Vec<RolePolicy> {
    let resources = &template["Resources"];
    let mut out = Vec::new();
    for policy in resources[role]["Properties"]["Policies"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        out.push(RolePolicy {
            name: policy["PolicyName"].as_str().unwrap_or(role).to_owned(),
            statements: statements(&policy["PolicyDocument"]["Statement"]),
        });
    }
    for (id, resource) in resources.as_mapping().into_iter().flatten() {
        if resource["Type"] != "AWS::IAM::Policy" || !attached_to(resource, role) {
            continue;
        }
        let props = &resource["Properties"];
        out.push(RolePolicy {
            name: props["PolicyName"]
                .as_str()
                .or_else(|| id.as_str())
                .unwrap_or(role)
                .to_owned(),
            statements: statements(&props["PolicyDocument"]["Statement"]),
        });
    }
    out
}

/// Whether an `AWS::IAM::Policy` names `role` (`!Ref Role`) in its `Roles`.
fn attached_to(policy: &Value, role: &str) -> bool {
    policy["Properties"]["Roles"]
        .as_sequence()
        .into_iter()
        .flatten()
        .any(|r| matches!(r, Value::Tagged(t) if t.value.as_str() == Some(role)))
}

/// The `Allow` statements, with both branches of each `!If` (the first element of an `!If`
/// is the condition's name).
fn statements(list: &Value) -> Vec<Value> {
    fn walk(statement: &Value, into: &mut Vec<Value>) {
        match statement {
            Value::Tagged(tagged) => {
                for branch in tagged.value.as_sequence().into_iter().flatten().skip(1) {
                    walk(branch, into);
                }
            }
            Value::Mapping(_) if statement["Effect"] == "Allow" => into.push(statement.clone()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for statement in list.as_sequence().into_iter().flatten() {
        walk(statement, &mut out);
    }
    out
}

/// A statement's actions.
pub fn actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(action) => vec![action.clone()],
        Value::Sequence(actions) => actions
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Every action each service's role allows, by service name.
pub fn allowed_actions(template: &Value) -> BTreeMap<&'static str, BTreeSet<String>> {
    SERVICE_ROLES
        .iter()
        .map(|(role, service)| {
            let actions = policies(template, role)
                .iter()
                .flat_map(|p| p.statements.iter().flat_map(actions))
                .collect();
            (*service, actions)
        })
        .collect()
}

/// Operations moto checks under an action named after the operation, which AWS authorises
/// with other actions instead. TransactWriteItems is not an IAM action: AWS checks each item's
/// own (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).
const MOTO_ACTION_NAMES: &[(&str, &[&str])] = &[(
    "dynamodb:TransactWriteItems",
    &[
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
    ],
)];

/// A statement's actions as moto names them: its own, plus moto's name for an operation AWS
/// authorises with one of them.
fn moto_actions(statement: &Value) -> Vec<String> {
    let mut out = actions(statement);
    for (moto, aws) in MOTO_ACTION_NAMES {
        if out.iter().any(|a| aws.contains(&a.as_str())) {
            out.push((*moto).to_owned());
        }
    }
    out
}

/// The policy as moto can evaluate it: the same actions, on `*`, without conditions.
pub fn for_moto(policy: &RolePolicy) -> serde_json::Value {
    let statements: Vec<serde_json::Value> = policy
        .statements
        .iter()
        .map(|s| json!({"Effect": "Allow", "Action": moto_actions(s), "Resource": "*"}))
        .filter(|s| s["Action"].as_array().is_some_and(|a| !a.is_empty()))
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../../../infra/template.yaml");

    #[test]
    fn every_service_role_has_statements_and_actions() {
        let template = template(TEMPLATE).expect("template");
        let allowed = allowed_actions(&template);
        assert_eq!(allowed.len(), 5);
        for (service, actions) in &allowed {
            assert!(
                actions.iter().any(|a| a.starts_with("sqs:ReceiveMessage")),
                "{service}: {actions:?}"
            );
        }
        // Policies attached to a role count: the launcher's PassRole is one of its own
        // (made only when an EMR role is given).
        assert!(allowed["launcher"].contains("iam:PassRole"));
    }

    #[test]
    fn the_moto_form_keeps_actions_and_drops_resources_and_conditions() {
        let yaml = template(
            r#"
Resources:
  R:
    Type: AWS::IAM::Role
    Properties:
      Policies:
        - PolicyName: p
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: [a:One, a:Two]
                Resource: !Sub "arn:x"
                Condition: { StringEquals: { "aws:ResourceTag/ManagedBy": intraday } }
              - !If
                - C
                - Effect: Allow
                  Action: b:Three
                  Resource: "*"
                - !Ref AWS::NoValue
              - Effect: Deny
                Action: c:Four
                Resource: "*"
  P:
    Type: AWS::IAM::Policy
    Properties:
      PolicyName: extra
      Roles: [!Ref R]
      PolicyDocument:
        Statement:
          - Effect: Allow
            Action: d:Five
            Resource: "*"
"#,
        )
        .expect("yaml");
        let policies = policies(&yaml, "R");
        assert_eq!(policies.len(), 2);
        assert_eq!(
            for_moto(&policies[0]),
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["a:One", "a:Two"], "Resource": "*"},
                {"Effect": "Allow", "Action": ["b:Three"], "Resource": "*"},
            ]})
        );
        assert_eq!(policies[1].name, "extra");
        assert_eq!(actions(&policies[1].statements[0]), vec!["d:Five"]);
    }
}
