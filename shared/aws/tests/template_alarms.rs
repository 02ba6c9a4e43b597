//! Every dead-letter queue, every function and every service queue in `infra/template.yaml`
//! has its alarms, each publishing to the alerts topic (and to the forward topic when one is
//! given), under the same condition as what it watches. moto's CloudFormation skips
//! `AWS::CloudWatch::Alarm`, so this reads the template itself.

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

/// The template's alarm on `metric` of `target`, or a panic naming both.
fn alarm_on<'a>(template: &'a Value, target: &str, metric: &str) -> &'a Value {
    let resources = template["Resources"].as_mapping().expect("resources");
    of_type(resources, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|id| &template["Resources"][id])
        .find(|alarm| {
            watched(alarm).as_deref() == Some(target) && alarm["Properties"]["MetricName"] == metric
        })
        .unwrap_or_else(|| panic!("no alarm on {metric} of {target}"))
}

/// Made exactly when what it watches is, and heard where every alert goes.
fn assert_made_with_and_heard(template: &Value, alarm: &Value, target: &str) {
    assert_eq!(
        alarm.get("Condition"),
        template["Resources"][target].get("Condition"),
        "{target}"
    );
    let actions = format!("{:?}", alarm["Properties"]["AlarmActions"]);
    assert!(
        actions.contains("AlertsTopic")
            && actions.contains("ExistingAlertsTopicArn")
            && actions.contains("ForwardAlertsTopicArn"),
        "{target}: {actions}"
    );
    assert_eq!(
        alarm["Properties"]["ComparisonOperator"], "GreaterThanThreshold",
        "{target}"
    );
}

#[test]
fn every_dead_letter_queue_and_function_raises_an_alarm_to_the_alerts_topic() {
    let template = template();
    let resources = template["Resources"].as_mapping().expect("resources");
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
    let watches = dlqs
        .iter()
        .map(|dlq| (*dlq, "ApproximateNumberOfMessagesVisible"))
        .chain(functions.iter().map(|function| (*function, "Errors")))
        .chain(functions.iter().map(|function| (*function, "Throttles")));
    for (target, metric) in watches {
        let alarm = alarm_on(&template, target, metric);
        assert_made_with_and_heard(&template, alarm, target);
        // One message in a dead-letter queue, one error, one throttle.
        assert_eq!(alarm["Properties"]["Threshold"], 0, "{target} {metric}");
    }
}

#[test]
fn every_service_queue_raises_an_alarm_when_its_oldest_message_waits_too_long() {
    let template = template();
    let resources = template["Resources"].as_mapping().expect("resources");
    let queues: Vec<&str> = of_type(resources, "AWS::SQS::Queue")
        .into_iter()
        .filter(|id| {
            template["Resources"][*id]["Properties"]
                .get("RedrivePolicy")
                .is_some()
        })
        .collect();
    assert_eq!(
        queues,
        [
            "SchedulerQueue",
            "LauncherQueue",
            "MonitorQueue",
            "TablesQueue",
            "ReaperQueue"
        ]
    );
    for queue in queues {
        let alarm = alarm_on(&template, queue, "ApproximateAgeOfOldestMessage");
        assert_made_with_and_heard(&template, alarm, queue);
        assert_eq!(alarm["Properties"]["Statistic"], "Maximum", "{queue}");
        // Above SQS's longest delay (the scheduler's delayed retries wait up to 900 s), so
        // a run waiting for its lock never trips it.
        let threshold = alarm["Properties"]["Threshold"]
            .as_u64()
            .unwrap_or_else(|| panic!("{queue}: a threshold in seconds"));
        assert!(threshold > 900, "{queue}: {threshold}");
    }
}

#[test]
fn an_alert_email_is_subscribed_only_to_a_topic_the_stack_creates() {
    let template = template();
    let subscription = &template["Resources"]["AlertsEmailSubscription"];
    assert_eq!(subscription["Type"], "AWS::SNS::Subscription");
    assert_eq!(subscription["Properties"]["Protocol"], "email");
    assert_eq!(subscription["Condition"], "HasAlertEmail");
    let condition = format!("{:?}", template["Conditions"]["HasAlertEmail"]);
    assert!(
        condition.contains("CreateAlertsTopic") && condition.contains("AlertEmail"),
        "{condition}"
    );
}
