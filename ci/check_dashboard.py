#!/usr/bin/env python3
"""Checks infra/template.yaml's dashboard: its body, once !Sub has filled it in, is JSON that
CloudWatch can take, and it graphs every queue and every function the template makes.

CloudFormation passes DashboardBody through unread; a stray quote or comma shows only when
PutDashboard refuses it mid-deploy. Run by ci/lint.sh with the tools' Python (PyYAML).
Body structure: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html
"""

import json
import re
import sys
from pathlib import Path

import yaml

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "template.yaml"
PSEUDO = {
    "AWS::Region": "eu-west-2",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "intraday",
}
GRID_WIDTH = 24


class Loader(yaml.SafeLoader):
    """Reads CloudFormation's short tags (!Sub, !Ref ...) as {"Fn::Sub": ...} and so on."""


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {("Ref" if suffix == "Ref" else "Fn::" + suffix): value}


Loader.add_multi_constructor("!", _tag)


def fail(message):
    print(f"ci: dashboard: {message}", file=sys.stderr)
    sys.exit(1)


def substitute(text, template, seen=()):
    """Fills in a !Sub string as CloudFormation would, with parameter defaults and each
    resource's physical name; refuses a name the template does not define, or a resource
    that exists only under a condition (the dashboard exists always)."""
    parameters = template["Parameters"]
    resources = template["Resources"]

    def one(match):
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in PSEUDO:
            return PSEUDO[name]
        if name in parameters:
            return str(parameters[name].get("Default", "x"))
        logical, _, attribute = name.partition(".")
        resource = resources.get(logical)
        if resource is None:
            fail(f"${{{name}}} names nothing in the template")
        if "Condition" in resource:
            fail(f"${{{name}}}: {logical} exists only when {resource['Condition']}")
        if logical in seen:
            fail(f"${{{name}}} refers to itself")
        physical = next(
            (v for k, v in resource.get("Properties", {}).items() if k.endswith("Name")),
            None,
        )
        if isinstance(physical, dict) and "Fn::Sub" in physical:
            return substitute(physical["Fn::Sub"], template, seen + (logical,))
        if isinstance(physical, str):
            return physical
        return logical

    return re.sub(r"\$\{([^}]+)\}", one, text)


def physical_name(resource, key, template):
    value = resource["Properties"][key]
    if isinstance(value, dict) and "Fn::Sub" in value:
        return substitute(value["Fn::Sub"], template)
    return value


def main():
    template = yaml.load(TEMPLATE.read_text(), Loader=Loader)
    dashboards = {
        logical: r
        for logical, r in template["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Dashboard"
    }
    if len(dashboards) != 1:
        fail(f"expected one AWS::CloudWatch::Dashboard, found {sorted(dashboards)}")
    (logical, dashboard), = dashboards.items()
    sub = dashboard["Properties"]["DashboardBody"].get("Fn::Sub")
    if not isinstance(sub, str):
        fail(f"{logical}: DashboardBody should be a !Sub of a JSON string")
    text = substitute(sub, template)
    try:
        body = json.loads(text)
    except json.JSONDecodeError as e:
        line = text.splitlines()[e.lineno - 1] if e.lineno <= len(text.splitlines()) else ""
        fail(f"{logical}: not JSON after substitution: {e}\n  {line}")

    graphed = {}  # (namespace, metric) -> set of dimension values
    for i, widget in enumerate(body.get("widgets", [])):
        where = f"widget {i} ({widget.get('properties', {}).get('title', widget.get('type'))})"
        for key in ("type", "x", "y", "width", "height", "properties"):
            if key not in widget:
                fail(f"{where}: no {key}")
        if widget["x"] + widget["width"] > GRID_WIDTH:
            fail(f"{where}: wider than the {GRID_WIDTH}-column grid")
        if widget["type"] != "metric":
            continue
        props = widget["properties"]
        if props.get("region") != PSEUDO["AWS::Region"]:
            fail(f"{where}: a metric widget needs its region")
        for metric in props.get("metrics") or fail(f"{where}: no metrics"):
            if not isinstance(metric, list) or not metric:
                fail(f"{where}: each metric is an array: {metric!r}")
            if isinstance(metric[0], dict):
                expression = metric[0].get("expression", "")
                if not re.fullmatch(r"[a-z][a-zA-Z0-9_]*", metric[0].get("id", "")):
                    fail(f"{where}: an expression needs an id starting lower-case")
                if expression.count("'") % 2 or expression.count('"') % 2:
                    fail(f"{where}: unbalanced quotes in {expression}")
                continue
            names = [m for m in metric if isinstance(m, str)]
            if len(names) < 2 or len(names) % 2:
                fail(f"{where}: namespace, name, then dimension name/value pairs: {metric!r}")
            graphed.setdefault((names[0], names[1]), set()).update(names[3::2])

    resources = template["Resources"].values()
    queues = {
        physical_name(r, "QueueName", template)
        for r in resources
        if r["Type"] == "AWS::SQS::Queue"
    }
    functions = {
        physical_name(r, "FunctionName", template)
        for r in resources
        if r["Type"] == "AWS::Lambda::Function"
    }
    wanted = {("AWS/SQS", "ApproximateNumberOfMessagesVisible"): queues}
    for service_queue in (q for q in queues if not q.endswith("-dlq")):
        wanted.setdefault(("AWS/SQS", "ApproximateAgeOfOldestMessage"), set()).add(service_queue)
    for metric in ("Errors", "Throttles", "Duration"):
        wanted[("AWS/Lambda", metric)] = functions
    for key, names in wanted.items():
        missing = names - graphed.get(key, set())
        if missing:
            fail(f"{key[0]} {key[1]} is not graphed for {sorted(missing)}")
    print(
        f"ci: dashboard {logical}: JSON, {len(body['widgets'])} widgets, "
        f"{len(queues)} queues and {len(functions)} functions graphed",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
