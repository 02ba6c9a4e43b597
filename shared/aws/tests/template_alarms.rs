//! Every dead-letter queue and every function in `infra/template.yaml` has an alarm that
//! publishes to the alerts topic, under the same condition as what it watches. moto's
//! CloudFormation skips `AWS::CloudWatch::Alarm`, so this reads the template itself.

use serde_yaml::Value;

fn template() -> Value {
    serde_yaml::from_str(include_str!("../../../infra/template.yaml")).expect("template YAML")
}

/// The logical ids of the resources of `kind`.
fn of_type<'a>(resources: &'a serde_yaml::Mapping, kind: &str) -> Vec<&'a str> {
    resources
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .filter_map(|(id, _)| id.as_str())
        .collect()
}

/// What an alarm's dimension names: the target of its `!GetAtt X.QueueName` or `!Ref X`.
fn watched(alarm: &Value) -> Option<String> {
    let value = &alarm["Properties"]["Dimensions"][0]["Value"];
    match value {
        Value::Tagged(tagged) => tagged
            .value
            .as_str()
            .map(|v| v.split('.').next().unwrap_or(v).to_owned()),
        _ => None,
    }
}

#[test]
fn every_dead_letter_queue_and_function_raises_an_alarm_to_the_alerts_topic() {
    let template = template();
    let resources = template["Resources"].as_mapping().expect("resources");
    let alarms: Vec<(&str, &Value)> = of_type(resources, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|id| (id, &template["Resources"][id]))
        .collect();
    let watched_by = |target: &str| {
        alarms
            .iter()
            .find(|(_, alarm)| watched(alarm).as_deref() == Some(target))
            .map(|(_, alarm)| *alarm)
    };
    let dlqs: Vec<&str> = of_type(resources, "AWS::SQS::Queue")
        .into_iter()
        .filter(|id| id.ends_with("Dlq"))
        .collect();
    let functions = of_type(resources, "AWS::Lambda::Function");
    assert_eq!(
        (dlqs.len(), functions.len()),
        (10, 5),
        "{dlqs:?} {functions:?}"
    );
    for target in dlqs.iter().chain(&functions) {
        let alarm = watched_by(target).unwrap_or_else(|| panic!("no alarm watches {target}"));
        // Made exactly when what it watches is.
        assert_eq!(
            alarm.get("Condition"),
            template["Resources"][*target].get("Condition"),
            "{target}"
        );
        let actions = format!("{:?}", alarm["Properties"]["AlarmActions"]);
        assert!(
            actions.contains("AlertsTopic") && actions.contains("ExistingAlertsTopicArn"),
            "{target}: {actions}"
        );
        assert_eq!(alarm["Properties"]["Threshold"], 0, "{target}");
        assert_eq!(
            alarm["Properties"]["ComparisonOperator"], "GreaterThanThreshold",
            "{target}"
        );
    }
}
