"""Checks on the alarms that cfn-lint cannot make: the wiring between the
alarms, the functions and what the functions read from an alarm. They run on
both infra/alarms.yaml (the standalone fragment, function ARNs as
parameters) and infra/template.yaml (the same alarms wired to the stack's own
functions and topic), and check that the template's copy is the fragment's.

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

from cfn import Tag, load

INFRA = Path(__file__).resolve().parents[1]
ALARM_PRINCIPAL = "lambda.alarms.cloudwatch.amazonaws.com"
# functions/redis-failover/src/lib.rs ALARM_GRACE_SECONDS
ALARM_GRACE_SECONDS = 60


def refs(value):
    """Every parameter or resource named by a !Ref (or a !GetAtt, by its
    resource) anywhere in value."""
    if isinstance(value, Tag):
        if value.name == "Ref":
            yield value.value
        elif value.name == "GetAtt" and isinstance(value.value, str):
            yield value.value.split(".", 1)[0]
        elif value.name == "GetAtt":
            yield value.value[0]
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


class AlarmWiringChecks:
    """The checks; a subclass names the file and how it names the functions
    and the notification topic."""

    TEMPLATE: Path
    # What AlarmActions name to invoke a function (parameters or resources).
    FUNCTION_PARAMETERS: set
    TOPIC: str
    # Alarms of the file that are not the fragment's (no cluster, no function).
    OTHER_ALARMS: set = set()

    @classmethod
    def setUpClass(cls):
        cls.template = load(cls.TEMPLATE)
        cls.resources = cls.template["Resources"]
        cls.alarms = {
            k: v
            for k, v in cls.resources.items()
            if v["Type"] == "AWS::CloudWatch::Alarm" and k not in cls.OTHER_ALARMS
        }
        functions = cls.FUNCTION_PARAMETERS
        cls.invoking = {
            k: v
            for k, v in cls.alarms.items()
            if functions & set(refs(v["Properties"].get("AlarmActions")))
        }

    def function_refs(self, value):
        return self.FUNCTION_PARAMETERS & set(refs(value))

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
            self.assertFalse(self.function_refs(ok), name)
            self.assertIn(self.TOPIC, set(refs(ok)), name)
            self.assertIn(self.TOPIC, set(refs(alarm["Properties"]["AlarmActions"])), name)

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
            invoked = self.function_refs(alarm["Properties"]["AlarmActions"])
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
                self.function_refs(alarm["Properties"]["AlarmActions"]),
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


class AlarmWiring(AlarmWiringChecks, unittest.TestCase):
    """infra/alarms.yaml: the fragment, deployable on its own."""

    TEMPLATE = INFRA / "alarms.yaml"
    FUNCTION_PARAMETERS = {"RedisFailoverFunctionArn", "MongoEndpointFunctionArn"}
    TOPIC = "NotifyTopicArn"


class TemplateAlarmWiring(AlarmWiringChecks, unittest.TestCase):
    """infra/template.yaml: the same alarms, on the stack's functions."""

    TEMPLATE = INFRA / "template.yaml"
    FUNCTION_PARAMETERS = {"RedisFailoverFunction", "MongoEndpointFunction"}
    TOPIC = "NotificationTopic"
    OTHER_ALARMS = {"TaskDeadLetterAlarm"}

    # How the fragment's names become the template's.
    RENAMES = {
        ("Ref", "NotifyTopicArn"): ("Ref", "NotificationTopic"),
        ("Ref", "RedisFailoverFunctionArn"): ("GetAtt", "RedisFailoverFunction.Arn"),
        ("Ref", "MongoEndpointFunctionArn"): ("GetAtt", "MongoEndpointFunction.Arn"),
    }

    @classmethod
    def rename(cls, value):
        if isinstance(value, Tag):
            if isinstance(value.value, str) and (value.name, value.value) in cls.RENAMES:
                return ("!",) + cls.RENAMES[(value.name, value.value)]
            return ("!", value.name, cls.rename(value.value))
        if isinstance(value, dict):
            return {k: cls.rename(v) for k, v in value.items()}
        if isinstance(value, list):
            return [cls.rename(v) for v in value]
        return value

    def test_the_template_carries_the_fragments_alarms_unchanged(self):
        # The same resources, properties and conditions; only the function
        # ARNs and the topic come from the stack instead of parameters. The
        # fragment's "HasRedis" also requires its function ARN parameter,
        # which the template does not have: its conditions are compared by
        # name only.
        fragment = load(INFRA / "alarms.yaml")
        for name, resource in fragment["Resources"].items():
            self.assertIn(name, self.resources, f"{name} of alarms.yaml is missing from template.yaml")
            ours = self.resources[name]
            self.assertEqual(self.rename(ours), self.rename(resource), name)
        for name in fragment.get("Outputs", {}):
            self.assertIn(name, self.template["Outputs"], name)
        for name, parameter in fragment["Parameters"].items():
            if name in ("RedisFailoverFunctionArn", "MongoEndpointFunctionArn", "NotifyTopicArn"):
                self.assertNotIn(name, self.template["Parameters"], name)
            else:
                ours = self.template["Parameters"][name]
                for key in ("Type", "Default", "AllowedPattern", "AllowedValues", "MaxLength"):
                    self.assertEqual(ours.get(key), parameter.get(key), f"{name}.{key}")
        for name in fragment["Conditions"]:
            self.assertIn(name, self.template["Conditions"], name)


if __name__ == "__main__":
    unittest.main()
