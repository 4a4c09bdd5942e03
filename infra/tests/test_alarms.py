"""Checks on infra/alarms.yaml that cfn-lint cannot make: the wiring between
the alarms, the functions and what the functions read from an alarm.

    python3 -m unittest discover -s infra/tests      (needs PyYAML)

- every alarm that invokes a function watches one metric with a `cluster`
  dimension (redis-failover and mongo-endpoint name the cluster from it,
  shared/src/alarm.rs) and sends OK only to SNS;
- every such alarm has a Lambda permission for
  lambda.alarms.cloudwatch.amazonaws.com pinned to its own ARN and this
  account, and the alarm DependsOn it;
- the EventBridge rules' name prefixes match exactly the alarms that invoke
  the same function;
- the alarm's window (Period x EvaluationPeriods) plus redis-failover's
  60 s grace covers the worst-case time from a head's death to ALARM, or
  redis-failover would refuse a good replica as "would lose data".
"""

import re
import unittest
from pathlib import Path

import yaml

TEMPLATE = Path(__file__).resolve().parents[1] / "alarms.yaml"
ALARM_PRINCIPAL = "lambda.alarms.cloudwatch.amazonaws.com"
FUNCTION_PARAMETERS = {"RedisFailoverFunctionArn", "MongoEndpointFunctionArn"}
# functions/redis-failover/src/lib.rs ALARM_GRACE_SECONDS
ALARM_GRACE_SECONDS = 60


class Tag:
    """A CloudFormation short-form intrinsic (!Ref, !Sub, ...)."""

    def __init__(self, name, value):
        self.name, self.value = name, value

    def __repr__(self):
        return f"!{self.name} {self.value!r}"


def _construct(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return Tag(suffix, value)


class Loader(yaml.SafeLoader):
    pass


Loader.add_multi_constructor("!", _construct)


def load():
    with TEMPLATE.open() as f:
        return yaml.load(f, Loader=Loader)


def refs(value):
    """Every parameter or resource named by a !Ref anywhere in value."""
    if isinstance(value, Tag):
        if value.name == "Ref":
            yield value.value
        else:
            yield from refs(value.value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from refs(v)
    elif isinstance(value, list):
        for v in value:
            yield from refs(v)


def sub(value):
    assert isinstance(value, Tag) and value.name == "Sub", value
    return value.value


class AlarmWiring(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = load()
        cls.resources = cls.template["Resources"]
        cls.alarms = {
            k: v for k, v in cls.resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"
        }
        cls.invoking = {
            k: v
            for k, v in cls.alarms.items()
            if FUNCTION_PARAMETERS & set(refs(v["Properties"].get("AlarmActions")))
        }

    def test_two_alarms_invoke_functions(self):
        self.assertEqual(set(self.invoking), {"RedisHeadAlarm", "MongoUnhealthyAlarm"})

    def test_every_alarm_name_has_the_prefix_and_the_cluster(self):
        for name, alarm in self.alarms.items():
            alarm_name = sub(alarm["Properties"]["AlarmName"])
            self.assertRegex(alarm_name, r"^\$\{AlarmPrefix\}-[a-z-]+-\$\{[A-Za-z]+ClusterName\}$", name)
            self.assertIn("AlarmDescription", alarm["Properties"], name)

    def test_invoking_alarms_name_their_cluster_in_the_metric(self):
        for name, alarm in self.invoking.items():
            props = alarm["Properties"]
            self.assertNotIn("Metrics", props, f"{name}: one metric, so the payload names one cluster")
            dims = {d["Name"]: d["Value"] for d in props["Dimensions"]}
            self.assertEqual(set(dims), {"cluster"}, name)
            self.assertIsInstance(dims["cluster"], Tag)
            self.assertRegex(dims["cluster"].value, r"ClusterName$")

    def test_ok_goes_to_humans_only(self):
        for name, alarm in self.alarms.items():
            ok = alarm["Properties"].get("OKActions", [])
            self.assertFalse(FUNCTION_PARAMETERS & set(refs(ok)), name)
            self.assertIn("NotifyTopicArn", set(refs(ok)), name)
            self.assertIn("NotifyTopicArn", set(refs(alarm["Properties"]["AlarmActions"])), name)

    def test_each_invoking_alarm_has_its_own_permission_and_waits_for_it(self):
        for name, alarm in self.invoking.items():
            permission_name = alarm.get("DependsOn")
            self.assertIsNotNone(permission_name, name)
            permission = self.resources[permission_name]
            self.assertEqual(permission["Type"], "AWS::Lambda::Permission")
            props = permission["Properties"]
            self.assertEqual(props["Principal"], ALARM_PRINCIPAL)
            self.assertEqual(props["Action"], "lambda:InvokeFunction")
            self.assertEqual(list(refs(props["SourceAccount"])), ["AWS::AccountId"])
            alarm_name = sub(alarm["Properties"]["AlarmName"])
            self.assertTrue(
                sub(props["SourceArn"]).endswith(":alarm:" + alarm_name),
                f"{permission_name} must name the alarm {alarm_name}",
            )
            invoked = FUNCTION_PARAMETERS & set(refs(alarm["Properties"]["AlarmActions"]))
            self.assertEqual(set(refs(props["FunctionName"])), invoked, name)
            self.assertEqual(permission.get("Condition"), alarm.get("Condition"), name)

    def test_eventbridge_rules_match_exactly_the_invoking_alarms(self):
        rules = {k: v for k, v in self.resources.items() if v["Type"] == "AWS::Events::Rule"}
        self.assertEqual(len(rules), len(self.invoking))
        for name, rule in rules.items():
            pattern = rule["Properties"]["EventPattern"]
            self.assertEqual(pattern["source"], ["aws.cloudwatch"])
            self.assertEqual(pattern["detail-type"], ["CloudWatch Alarm State Change"])
            self.assertEqual(pattern["detail"]["state"]["value"], ["ALARM"])
            prefix = sub(pattern["detail"]["alarmName"][0]["prefix"])
            (target,) = rule["Properties"]["Targets"]
            matched = [
                a
                for a, alarm in self.alarms.items()
                if sub(alarm["Properties"]["AlarmName"]).startswith(prefix)
            ]
            self.assertEqual(len(matched), 1, f"{name} matches {matched}")
            alarm = self.invoking.get(matched[0])
            self.assertIsNotNone(alarm, f"{name} matches {matched[0]}, which invokes nothing")
            self.assertEqual(
                set(refs(target["Arn"])),
                FUNCTION_PARAMETERS & set(refs(alarm["Properties"]["AlarmActions"])),
            )
            permissions = [
                p
                for p in self.resources.values()
                if p["Type"] == "AWS::Lambda::Permission"
                and p["Properties"]["Principal"] == "events.amazonaws.com"
                and isinstance(p["Properties"]["SourceArn"], Tag)
                and p["Properties"]["SourceArn"].name == "GetAtt"
                and p["Properties"]["SourceArn"].value in (f"{name}.Arn", [name, "Arn"])
            ]
            self.assertEqual(len(permissions), 1, name)
            self.assertEqual(permissions[0].get("Condition"), rule.get("Condition"))

    def test_window_covers_worst_case_detection(self):
        # From the head's death to ALARM, at worst: up to one period before
        # the first sample that sees it, DatapointsToAlarm breaching periods,
        # one more period when the last datum arrives after its evaluation.
        # redis-failover allows a replica's link to have been down for
        # (time since ALARM) + Period x EvaluationPeriods + grace.
        props = self.alarms["RedisHeadAlarm"]["Properties"]
        period, n, m = props["Period"], props["EvaluationPeriods"], props["DatapointsToAlarm"]
        worst = period + m * period + period
        self.assertGreaterEqual(period * n + ALARM_GRACE_SECONDS, worst)
        self.assertEqual(props["TreatMissingData"], "breaching")
        self.assertEqual(period, 60, "publish-metrics writes one datum a minute")

    def test_cluster_parameters_match_what_alarm_rs_accepts(self):
        params = self.template["Parameters"]
        for name in ("RedisClusterName", "MongoClusterName", "PostgresClusterName"):
            pattern = re.compile(params[name]["AllowedPattern"])
            self.assertTrue(pattern.fullmatch("kate.example.com"))
            self.assertTrue(pattern.fullmatch(""))
            for bad in ("Kate.example.com", "kate.example.com.", "kate", "a..b"):
                self.assertIsNone(pattern.fullmatch(bad), bad)


if __name__ == "__main__":
    unittest.main()
