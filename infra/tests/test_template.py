"""Checks on infra/template.yaml (AWS SAM) that cfn-lint and checkov do not
make: that it matches the code.

    python3 -m unittest discover -s infra/tests      (needs PyYAML)

- every crate in functions/ has an AWS::Serverless::Function built from the
  workspace (CodeUri ..) with BuildMethod rust-cargolambda and
  BuildProperties.Binary naming the crate's binary, and every function a
  crate; provided.al2023, handler bootstrap, arm64 by default (parameter
  Architecture: arm64 or x86_64);
- every function has its own role and its own log group; no IAM statement
  allows "*" or a service wildcard ("ec2:*"); a statement on Resource "*"
  is read-only (Describe/List/Get) or carries a Condition; only the VPC
  access managed policy, and only when the functions are in a VPC;
- the tag conditions that keep the roles to what ninelives manages;
- passwords only as references (<VAR>_FROM: an SSM parameter name or a
  Secrets Manager ARN), each readable (ssm:GetParameter,
  secretsmanager:GetSecretValue) by exactly the functions given it and only
  when set, and the optional KMS key only through SSM/Secrets Manager;
- parameters validated as the code validates the same settings (zone id,
  retention days 1..36500 and their defaults, record TTL, e-mail);
- every environment variable the template sets for a function is one that
  function's Config reads (its lib.rs and the shared config modules it
  uses), and every variable whose absence the Config refuses is set;
- the triggers: the snapshot tiers' input is what snapshot-volumes accepts,
  the health checks deliver the plain Scheduled Event (a constant {} would
  be refused), the lifecycle rule matches the fixtures' detail-types, the
  task queue is FIFO with a redrive to a FIFO DLQ and a visibility timeout
  of at least 6 x replset-tasks' timeout.
"""

import json
import re
import unittest
from pathlib import Path

import cfn
from cfn import Tag

INFRA = Path(__file__).resolve().parents[1]
ROOT = INFRA.parent
TEMPLATE = INFRA / "template.yaml"
FUNCTIONS = ROOT / "functions"
SHARED = ROOT / "shared" / "src"

VPC_POLICY = "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
READ_ONLY_PREFIXES = ("Describe", "List", "Get")


def load(path=TEMPLATE):
    return cfn.load(path)


def as_list(value):
    return value if isinstance(value, list) else [value]


def getatt_target(value):
    """The resource of a !GetAtt X.Arn (or None)."""
    if isinstance(value, Tag) and value.name == "GetAtt":
        v = value.value
        return v.split(".", 1)[0] if isinstance(v, str) else v[0]
    return None


def ref_target(value):
    if isinstance(value, Tag) and value.name == "Ref":
        return value.value
    return None


def crates():
    """Crate folder -> its [[bin]] name (or the package name)."""
    found = {}
    for cargo in sorted(FUNCTIONS.glob("*/Cargo.toml")):
        text = cargo.read_text()
        bins = re.findall(r'\[\[bin\]\]\s*\nname\s*=\s*"([^"]+)"', text)
        package = re.search(r'\[package\]\s*\nname\s*=\s*"([^"]+)"', text).group(1)
        found[cargo.parent.name] = bins[0] if bins else package
    return found


# ------------------------------------------------ what each Config reads

ENV_NAME = re.compile(r'"([A-Z][A-Z0-9_]{2,})"')


def names_in(path):
    return set(ENV_NAME.findall(path.read_text()))


def module_file(path_parts):
    """shared::a::b::C -> the file of the longest module prefix."""
    for n in range(len(path_parts), 0, -1):
        base = SHARED.joinpath(*path_parts[:n])
        for candidate in (base.with_suffix(".rs"), base / "mod.rs"):
            if candidate.is_file():
                return candidate
    return None


# shared/src/config.rs holds helpers for every function; what each helper
# reads is listed here and checked against the file below.
CONFIG_HELPERS = {
    "Common": {"DRY_RUN", "NOTIFY_TOPIC_ARN"},
    "hosted_zone": {"HOSTED_ZONE_ID"},
}


def config_reads(function):
    """Every environment variable name function's Config may read: literals
    in its lib.rs, in the shared modules it imports (not config.rs, whose
    helpers are counted only when used), RUST_LOG (shared::telemetry, for
    every function through shared::function::serve)."""
    lib = FUNCTIONS / function / "src" / "lib.rs"
    text = lib.read_text()
    reads = names_in(lib) | {"RUST_LOG"}
    for use in re.findall(r"use shared::([a-z_:]+)(?:::\{([^}]*)\}|::(\w+))?;", text):
        parts = use[0].split("::")
        items = [i.strip() for i in (use[1] or use[2] or "").split(",") if i.strip()]
        if parts == ["config"]:
            for item in items:
                reads |= CONFIG_HELPERS.get(item, set())
            continue
        module = module_file(parts + items[:1])
        if module is not None and module != SHARED / "config.rs":
            reads |= names_in(module)
    # Items named in full in the code (shared::config::hosted_zone(...)).
    for item, names in CONFIG_HELPERS.items():
        if re.search(rf"\bconfig::{item}\b", text):
            reads |= names
    # Every function starts through shared::function, which reads the
    # reference <VAR>_FROM of each credential setting its Config reads.
    reads |= {CREDENTIALS[v] for v in reads if v in CREDENTIALS}
    return reads


# shared/src/secrets.rs: the credential settings that shared::function also
# reads as <VAR>_FROM (a reference) for every function.
CREDENTIALS = dict(re.findall(r'\("([A-Z_]+)", "([A-Z_]+_FROM)"\)', (SHARED / "secrets.rs").read_text()))


def refs_in(value):
    """Every name a !Ref or !Sub ${...} in value names."""
    found = set()
    if isinstance(value, Tag):
        if value.name == "Ref" and isinstance(value.value, str):
            found.add(value.value)
        elif value.name == "Sub" and isinstance(value.value, str):
            found |= set(re.findall(r"\$\{([A-Za-z0-9]+)\}", value.value))
        found |= refs_in(value.value) if not isinstance(value.value, str) else set()
    elif isinstance(value, dict):
        for v in value.values():
            found |= refs_in(v)
    elif isinstance(value, list):
        for v in value:
            found |= refs_in(v)
    return found


def config_requires(function):
    """Variables whose absence the function's Config refuses."""
    text = (FUNCTIONS / function / "src" / "lib.rs").read_text()
    return set(re.findall(r'ConfigError::Missing\s*\{\s*name:\s*"([A-Z_]+)"', text))


class TemplateChecks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = load()
        cls.parameters = cls.template["Parameters"]
        cls.resources = cls.template["Resources"]
        cls.globals = cls.template.get("Globals", {}).get("Function", {})
        cls.functions = {
            k: v for k, v in cls.resources.items() if v["Type"] == "AWS::Serverless::Function"
        }
        cls.crates = crates()
        # logical id -> crate folder, from BuildProperties.Binary
        cls.crate_of = {}
        for name, fn in cls.functions.items():
            binary = fn.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
            for folder, bin_name in cls.crates.items():
                if binary == bin_name:
                    cls.crate_of[name] = folder

    def prop(self, function, key):
        """A function property, with Globals as SAM merges them."""
        props = self.functions[function]["Properties"]
        if key in props:
            value = props[key]
            if isinstance(value, dict) and isinstance(self.globals.get(key), dict):
                merged = dict(self.globals[key])
                merged.update(value)
                return merged
            return value
        return self.globals.get(key)

    def env(self, function):
        variables = dict((self.globals.get("Environment") or {}).get("Variables", {}))
        variables.update(
            (self.functions[function]["Properties"].get("Environment") or {}).get("Variables", {})
        )
        return variables

    def role(self, function):
        role = getatt_target(self.functions[function]["Properties"].get("Role"))
        self.assertIsNotNone(role, f"{function} has no Role: !GetAtt <role>.Arn (SAM would make one)")
        self.assertEqual(self.resources[role]["Type"], "AWS::IAM::Role", function)
        return role

    def statements(self, role):
        for policy in self.resources[role]["Properties"].get("Policies", []):
            yield from as_list(policy["PolicyDocument"]["Statement"])

    def all_statements(self):
        for name, resource in self.resources.items():
            if resource["Type"] == "AWS::IAM::Role":
                for policy in resource["Properties"].get("Policies", []):
                    for s in as_list(policy["PolicyDocument"]["Statement"]):
                        yield name, s
            elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                for s in as_list(resource["Properties"]["PolicyDocument"]["Statement"]):
                    yield name, s
            elif resource["Type"] == "AWS::Serverless::Function":
                for policy in as_list(resource["Properties"].get("Policies", [])):
                    if isinstance(policy, dict) and "Statement" in policy:
                        for s in as_list(policy["Statement"]):
                            yield name, s

    # ------------------------------------------------------- crates

    def test_every_crate_has_a_function_and_every_function_a_crate(self):
        self.assertEqual(len(self.crates), 7, self.crates)
        self.assertEqual(
            set(self.crate_of.values()),
            set(self.crates),
            "crates without a function resource: "
            f"{sorted(set(self.crates) - set(self.crate_of.values()))}",
        )
        self.assertEqual(
            set(self.crate_of),
            set(self.functions),
            f"functions without a crate: {sorted(set(self.functions) - set(self.crate_of))}",
        )
        self.assertEqual(len(set(self.crate_of.values())), len(self.functions), "two functions, one crate")

    def test_functions_are_built_with_cargo_lambda_from_the_workspace(self):
        workspace = (ROOT / "Cargo.toml").read_text()
        for name, fn in self.functions.items():
            self.assertEqual(fn["Metadata"]["BuildMethod"], "rust-cargolambda", name)
            self.assertEqual(fn["Properties"]["CodeUri"], "..", name)
            self.assertTrue((INFRA / fn["Properties"]["CodeUri"] / "Cargo.toml").is_file())
            self.assertIn(f'"functions/{self.crate_of[name]}"', workspace, name)

    def test_runtime_handler_and_architecture(self):
        arch = self.parameters["Architecture"]
        self.assertEqual(set(arch["AllowedValues"]), {"arm64", "x86_64"})
        self.assertEqual(arch["Default"], "arm64")
        for name in self.functions:
            self.assertEqual(self.prop(name, "Runtime"), "provided.al2023", name)
            self.assertEqual(self.prop(name, "Handler"), "bootstrap", name)
            self.assertEqual(self.prop(name, "Architectures"), [Tag("Ref", "Architecture")], name)

    def test_timeouts_and_memory(self):
        for name in self.functions:
            timeout = self.prop(name, "Timeout")
            self.assertIsInstance(timeout, int, f"{name}: set its Timeout")
            self.assertTrue(10 <= timeout <= 900, name)
            self.assertTrue(128 <= self.prop(name, "MemorySize") <= 10240, name)

    def test_each_function_logs_to_its_own_group(self):
        groups = {}
        for name in self.functions:
            logging = self.prop(name, "LoggingConfig")
            self.assertEqual(logging["LogFormat"], "JSON", name)
            group = ref_target(logging.get("LogGroup"))
            self.assertEqual(self.resources[group]["Type"], "AWS::Logs::LogGroup", name)
            self.assertIn("RetentionInDays", self.resources[group]["Properties"], group)
            groups[name] = group
            logs = [s for s in self.statements(self.role(name)) if any(a.startswith("logs:") for a in as_list(s["Action"]))]
            self.assertEqual(len(logs), 1, name)
            self.assertEqual(set(as_list(logs[0]["Action"])), {"logs:CreateLogStream", "logs:PutLogEvents"}, name)
            self.assertEqual(getatt_target(logs[0]["Resource"]), group, name)
        self.assertEqual(len(set(groups.values())), len(groups))

    # --------------------------------------------------- least privilege

    def test_one_role_per_function(self):
        roles = {name: self.role(name) for name in self.functions}
        self.assertEqual(len(set(roles.values())), len(roles), f"a role is shared: {roles}")
        for name, role in roles.items():
            trust = self.resources[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
            self.assertEqual(
                [s["Principal"] for s in trust], [{"Service": "lambda.amazonaws.com"}], role
            )
            self.assertNotIn("Policies", self.functions[name]["Properties"], name)

    def test_managed_policies_only_for_the_vpc(self):
        for name, resource in self.resources.items():
            if resource["Type"] != "AWS::IAM::Role":
                continue
            managed = resource["Properties"].get("ManagedPolicyArns")
            if managed is None:
                continue
            # !If [InVpc, [VPC access], !Ref AWS::NoValue]
            self.assertIsInstance(managed, Tag, name)
            self.assertEqual(managed.name, "If", name)
            condition, when_true, when_false = managed.value
            self.assertEqual(condition, "InVpc", name)
            self.assertEqual(when_true, [Tag("Sub", VPC_POLICY)], name)
            self.assertEqual(when_false, Tag("Ref", "AWS::NoValue"), name)

    def test_no_wildcard_action(self):
        for role, s in self.all_statements():
            self.assertEqual(s["Effect"], "Allow", role)
            self.assertNotIn("NotAction", s, role)
            self.assertNotIn("NotResource", s, role)
            for action in as_list(s["Action"]):
                self.assertNotEqual(action, "*", role)
                self.assertRegex(action, r"^[a-z0-9-]+:[A-Za-z0-9]+$", f"{role}: {action} is a wildcard")

    def test_resource_star_is_read_only_or_conditioned(self):
        for role, s in self.all_statements():
            if "*" not in as_list(s["Resource"]):
                continue
            read_only = all(a.split(":", 1)[1].startswith(READ_ONLY_PREFIXES) for a in as_list(s["Action"]))
            self.assertTrue(read_only or s.get("Condition"), f"{role}: {s}")

    def test_snapshots_are_created_tagged_and_deleted_only_when_managed(self):
        managed = {"StringEquals": {"aws:ResourceTag/ninelives:managed-by": "ninelives"}}
        for name in self.functions:
            for s in self.statements(self.role(name)):
                actions = set(as_list(s["Action"]))
                resources = " ".join(r.value if isinstance(r, Tag) else r for r in as_list(s["Resource"]))
                if "ec2:DeleteSnapshot" in actions:
                    self.assertEqual(s.get("Condition"), managed, f"{name}: {s}")
                if actions & {"ec2:CreateSnapshot", "ec2:CreateSnapshots"} and "snapshot/" in resources:
                    self.assertEqual(
                        s.get("Condition"),
                        {"StringEquals": {"aws:RequestTag/ninelives:managed-by": "ninelives"}},
                        f"{name}: {s}",
                    )
                if "ec2:CreateTags" in actions:
                    condition = s.get("Condition", {}).get("StringEquals", {})
                    self.assertTrue(
                        "ec2:CreateAction" in condition or condition == managed["StringEquals"],
                        f"{name}: CreateTags must be at creation or on managed snapshots: {s}",
                    )
                if "ec2:CreateVolume" in actions and "volume/" in resources:
                    self.assertEqual(
                        s.get("Condition"),
                        {"Null": {"aws:RequestTag/ninelives:cluster": "false",
                                  "aws:RequestTag/ninelives:restored-for": "false"}},
                        f"{name}: {s}",
                    )
                if actions & {"ec2:AttachVolume", "ec2:ModifyInstanceAttribute"}:
                    self.assertEqual(
                        s.get("Condition", {}).get("Null", {}).get("aws:ResourceTag/ninelives:cluster"),
                        "false",
                        f"{name}: {s}",
                    )
                if actions & {"autoscaling:CompleteLifecycleAction", "autoscaling:RecordLifecycleActionHeartbeat"}:
                    self.assertEqual(
                        s.get("Condition"), {"Null": {"aws:ResourceTag/ninelives:cluster": "false"}}, name
                    )

    def test_route53_sqs_and_sns_only_on_this_stacks_zone_queue_and_topic(self):
        zone = Tag("Sub", "arn:${AWS::Partition}:route53:::hostedzone/${HostedZoneId}")
        for name in self.functions:
            for s in self.statements(self.role(name)):
                for action in as_list(s["Action"]):
                    service = action.split(":")[0]
                    if service == "route53":
                        self.assertEqual(s["Resource"], zone, f"{name}: {s}")
                    elif service == "sqs":
                        self.assertEqual(getatt_target(s["Resource"]), "TaskQueue", f"{name}: {s}")
                    elif service == "sns":
                        self.assertEqual(ref_target(s["Resource"]), "NotificationTopic", f"{name}: {s}")
                    if action == "route53:ChangeResourceRecordSets":
                        types = s["Condition"]["ForAllValues:StringEquals"]
                        self.assertEqual(set(types["route53:ChangeResourceRecordSetsRecordTypes"]), {"A", "AAAA", "CNAME"})
                    if action == "cloudwatch:PutMetricData":
                        self.assertEqual(
                            set(s["Condition"]["StringEquals"]["cloudwatch:namespace"]),
                            {"NineLives/Redis", "NineLives/MongoDB", "NineLives/Postgres"},
                        )

    # --------------------------------------------------------- parameters

    def test_hosted_zone_id_is_required_and_validated(self):
        p = self.parameters["HostedZoneId"]
        self.assertNotIn("Default", p, "HostedZoneId is required: no default")
        self.assertEqual(p["AllowedPattern"], "^Z[A-Z0-9]{1,32}$")
        pattern = re.compile(p["AllowedPattern"])
        for good in ("Z0123456789ABCDEFGHIJ", "Z1D633PJN98FT9"):
            self.assertTrue(pattern.fullmatch(good), good)
        for bad in ("", "z123", "/hostedzone/Z123", "Z", "Z" + "1" * 33, "Z12 3"):
            self.assertIsNone(pattern.fullmatch(bad), bad)

    def test_retention_matches_the_code(self):
        tier = (SHARED / "backup" / "tier.rs").read_text()
        maximum = int(re.search(r"MAX_RETENTION_DAYS: u32 = ([0-9_]+);", tier).group(1).replace("_", ""))
        defaults = dict(re.findall(r"(hourly|daily|weekly|monthly): ([0-9]+),", tier.split("fn default()")[1]))
        for tier_name in ("Hourly", "Daily", "Weekly", "Monthly"):
            p = self.parameters[f"Retention{tier_name}"]
            self.assertEqual(p["Type"], "Number")
            self.assertEqual((p["MinValue"], p["MaxValue"]), (1, maximum), tier_name)
            self.assertEqual(p["Default"], int(defaults[tier_name.lower()]), tier_name)

    def test_record_ttl_matches_the_code(self):
        lib = (FUNCTIONS / "redis-failover" / "src" / "lib.rs").read_text()
        default, low, high = re.search(r'number\(env, "RECORD_TTL", ([0-9_]+), ([0-9_]+), ([0-9_]+)\)', lib).groups()
        p = self.parameters["RecordTtl"]
        self.assertEqual(
            (p["Default"], p["MinValue"], p["MaxValue"]),
            tuple(int(v.replace("_", "")) for v in (default, low, high)),
        )

    def test_notification_email_is_optional_and_validated(self):
        p = self.parameters["NotificationEmail"]
        self.assertEqual(p["Default"], "")
        pattern = re.compile(p["AllowedPattern"])
        for good in ("", "ops@example.com", "a.b+c@d.example.org"):
            self.assertTrue(pattern.fullmatch(good), good)
        for bad in ("ops", "a@b", "a b@c.d", "ops@example.com, x@y.z"):
            self.assertIsNone(pattern.fullmatch(bad), bad)

    def test_passwords_are_only_references(self):
        # No password value in the template or the functions' environment:
        # only <VAR>_FROM, naming an SSM parameter or a Secrets Manager secret.
        for name in self.parameters:
            if "Password" in name:
                self.assertTrue(name.endswith(("PasswordParameter", "PasswordSecret")), name)
        for name in self.functions:
            for variable in self.env(name):
                if "PASSWORD" in variable:
                    self.assertTrue(variable.endswith("_FROM"), f"{name}.{variable}")

    def reference_parameters(self, function):
        """Template parameters a function's <VAR>_FROM variables name."""
        found = set()
        for variable, value in self.env(function).items():
            if variable.endswith("_FROM"):
                found |= {p for p in refs_in(value) if p in self.parameters}
        return found

    def test_each_reference_is_readable_by_its_functions_only(self):
        # Every parameter a <VAR>_FROM names has a policy, present only when
        # the parameter is set, on exactly that parameter or secret, held by
        # exactly the roles of the functions given that reference.
        readers = {}
        for function in self.functions:
            for parameter in self.reference_parameters(function):
                readers.setdefault(parameter, set()).add(self.role(function))
        self.assertEqual(
            set(readers),
            {p for p in self.parameters if p.endswith(("PasswordParameter", "PasswordSecret"))},
        )
        policies = {k: v for k, v in self.resources.items() if v["Type"] == "AWS::IAM::Policy"}
        for parameter, roles in readers.items():
            action = "ssm:GetParameter" if parameter.endswith("Parameter") else "secretsmanager:GetSecretValue"
            granting = [
                (k, v)
                for k, v in policies.items()
                if any(action in as_list(s["Action"]) for s in as_list(v["Properties"]["PolicyDocument"]["Statement"]))
                and parameter in refs_in(v["Properties"]["PolicyDocument"])
            ]
            self.assertEqual(len(granting), 1, f"{parameter}: {[k for k, _ in granting]}")
            key, policy = granting[0]
            condition = self.template["Conditions"][policy["Condition"]]
            self.assertEqual(condition, Tag("Not", [Tag("Equals", [Tag("Ref", parameter), ""])]), key)
            self.assertEqual({ref_target(r) for r in policy["Properties"]["Roles"]}, roles, key)
            for s in as_list(policy["Properties"]["PolicyDocument"]["Statement"]):
                self.assertEqual(as_list(s["Action"]), [action], key)
                self.assertNotIn("*", str(s["Resource"]), key)

    def test_the_credentials_key_is_used_only_through_ssm_or_secrets_manager(self):
        statements = [
            s
            for _, s in self.all_statements()
            if any(a.startswith("kms:") for a in as_list(s["Action"]))
        ]
        self.assertEqual(len(statements), 1, statements)
        s = statements[0]
        self.assertEqual(as_list(s["Action"]), ["kms:Decrypt"])
        self.assertEqual(s["Resource"], Tag("Ref", "CredentialsKmsKeyArn"))
        self.assertEqual(
            s["Condition"],
            {
                "StringEquals": {
                    "kms:ViaService": [
                        Tag("Sub", "ssm.${AWS::Region}.amazonaws.com"),
                        Tag("Sub", "secretsmanager.${AWS::Region}.amazonaws.com"),
                    ]
                }
            },
        )

    def test_reference_patterns_match_the_code(self):
        # The template's patterns accept what shared/src/secrets.rs accepts
        # for these forms (names for SSM, full ARNs for secrets) and refuse
        # a value in place of a reference.
        ssm = re.compile(self.parameters["RedisPasswordParameter"]["AllowedPattern"])
        secret = re.compile(self.parameters["RedisPasswordSecret"]["AllowedPattern"])
        for good in ("", "/ninelives/redis-password", "/a", "/a.b/c_d-e"):
            self.assertIsNotNone(ssm.fullmatch(good), good)
        for bad in ("hunter2", "/a//b", "/a/", "/a b", "arn:aws:ssm:eu-west-1:123456789012:parameter/a"):
            self.assertIsNone(ssm.fullmatch(bad), bad)
        arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ninelives/db-AbCdEf"
        for good in ("", arn, arn + ":password"):
            self.assertIsNotNone(secret.fullmatch(good), good)
        for bad in ("hunter2", arn + ":password:AWSCURRENT", arn + ":", "arn:aws:ssm:eu-west-1:123456789012:parameter/a"):
            self.assertIsNone(secret.fullmatch(bad), bad)

    # ----------------------------------------------------- configuration

    def test_environment_is_what_each_config_reads(self):
        for name, crate in self.crate_of.items():
            reads = config_reads(crate)
            extra = set(self.env(name)) - reads
            self.assertFalse(extra, f"{crate} does not read {sorted(extra)} (it reads {sorted(reads)})")
            missing = config_requires(crate) - set(self.env(name))
            self.assertFalse(missing, f"{crate} refuses to start without {sorted(missing)}")

    def test_config_helper_table_matches_config_rs(self):
        text = (SHARED / "config.rs").read_text()
        common = text.split("impl Common")[1]
        self.assertEqual(CONFIG_HELPERS["Common"], set(ENV_NAME.findall(common)))
        zone = text.split("pub fn hosted_zone")[1].split("\n}\n")[0]
        self.assertEqual(CONFIG_HELPERS["hosted_zone"], set(ENV_NAME.findall(zone)))

    # ---------------------------------------------------------- triggers

    def events(self, function):
        return self.functions[function]["Properties"].get("Events", {})

    def test_snapshot_tiers_pass_tier_and_scheduled_time(self):
        events = self.events("SnapshotVolumesFunction")
        tiers = set()
        for event in events.values():
            self.assertEqual(event["Type"], "ScheduleV2")
            props = event["Properties"]
            data = json.loads(props["Input"])
            # snapshot-volumes' Input: deny_unknown_fields tier, time, dry_run
            self.assertLessEqual(set(data), {"tier", "time", "dry_run"})
            self.assertEqual(data["time"], "<aws.scheduler.scheduled-time>")
            tiers.add(data["tier"])
            self.assertIs(props.get("OmitName"), True, "schedule names must not collide between stacks")
        self.assertEqual(tiers, {"hourly", "daily", "weekly", "monthly"})

    def test_health_checks_deliver_the_plain_scheduled_event(self):
        for name in ("RedisFailoverFunction", "MongoEndpointFunction", "PublishMetricsFunction", "PurgeSnapshotsFunction"):
            schedules = [e for e in self.events(name).values() if e["Type"] == "Schedule"]
            self.assertEqual(len(schedules), 1, name)
            props = schedules[0]["Properties"]
            self.assertNotIn("Input", props, f"{name}: the fixtures' Scheduled Event, not a constant")
            if name != "PurgeSnapshotsFunction":
                self.assertEqual(props["Schedule"], "rate(1 minute)", name)

    def test_async_settings(self):
        def config(name):
            return self.functions[name]["Properties"].get("EventInvokeConfig", {})

        self.assertEqual(
            (config("PublishMetricsFunction")["MaximumRetryAttempts"], config("PublishMetricsFunction")["MaximumEventAgeInSeconds"]),
            (0, 60),
        )
        for name in ("RedisFailoverFunction", "MongoEndpointFunction"):
            self.assertEqual(config(name)["MaximumEventAgeInSeconds"], 600, name)
        for name in ("SnapshotVolumesFunction", "PurgeSnapshotsFunction", "LifecycleHookFunction"):
            c = config(name)
            self.assertEqual(c["MaximumRetryAttempts"], 2, name)
            self.assertEqual(ref_target(c["DestinationConfig"]["OnFailure"]["Destination"]), "NotificationTopic", name)

    def test_lifecycle_rule_matches_the_fixtures(self):
        (event,) = self.events("LifecycleHookFunction").values()
        self.assertEqual(event["Type"], "EventBridgeRule")
        pattern = event["Properties"]["Pattern"]
        self.assertEqual(pattern["source"], ["aws.autoscaling"])
        fixtures = {
            json.loads(p.read_text())["detail-type"]
            for p in (ROOT / "events-fixtures" / "lifecycle-hook").glob("eventbridge-*.json")
        }
        self.assertEqual(set(pattern["detail-type"]), fixtures)

    def test_task_queue_feeds_replset_tasks(self):
        (event,) = self.events("ReplsetTasksFunction").values()
        self.assertEqual(event["Type"], "SQS")
        props = event["Properties"]
        self.assertEqual(getatt_target(props["Queue"]), "TaskQueue")
        self.assertEqual(props["BatchSize"], 1)
        self.assertEqual(props["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        queue = self.resources["TaskQueue"]["Properties"]
        self.assertIs(queue["FifoQueue"], True)
        self.assertGreaterEqual(queue["VisibilityTimeout"], 6 * self.prop("ReplsetTasksFunction", "Timeout"))
        redrive = queue["RedrivePolicy"]
        self.assertEqual(redrive["maxReceiveCount"], 5)
        dlq = getatt_target(redrive["deadLetterTargetArn"])
        self.assertIs(self.resources[dlq]["Properties"]["FifoQueue"], True)
        alarm = self.resources["TaskDeadLetterAlarm"]["Properties"]
        self.assertEqual(alarm["Dimensions"][0]["Value"], Tag("GetAtt", f"{dlq}.QueueName"))
        self.assertEqual(ref_target(alarm["AlarmActions"][0]), "NotificationTopic")
        self.assertEqual(self.env("LifecycleHookFunction")["TASK_QUEUE_URL"], Tag("Ref", "TaskQueue"))


def long_form(value):
    """Short tags to the JSON form (!GetAtt A.B -> {"Fn::GetAtt": [A, B]})."""
    if isinstance(value, Tag):
        inner = long_form(value.value)
        if value.name == "Ref":
            return {"Ref": inner}
        if value.name == "Condition":
            return {"Condition": inner}
        if value.name == "GetAtt" and isinstance(inner, str):
            inner = inner.split(".", 1)
        return {f"Fn::{value.name}": inner}
    if isinstance(value, dict):
        return {k: long_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [long_form(v) for v in value]
    return value


try:
    from samtranslator.translator.transform import transform as sam_transform
except ImportError:  # only in the infra checks' venv (infra/requirements.txt)
    sam_transform = None


@unittest.skipIf(sam_transform is None, "aws-sam-translator not installed (pip install -r infra/requirements.txt)")
class SamTransform(unittest.TestCase):
    """The real SAM transform (what CloudFormation runs at deploy time), so
    that SAM adds no role or policy of its own and merges the Globals as the
    checks above assume."""

    @classmethod
    def setUpClass(cls):
        import os

        template = long_form(load())
        cls.declared_roles = {
            k for k, v in template["Resources"].items() if v["Type"] == "AWS::IAM::Role"
        }
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::Serverless::Function":
                resource["Properties"]["CodeUri"] = "s3://bucket/code.zip"

        class NoManagedPolicies:
            def load(self):
                return {}

        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        cls.output = sam_transform(template, {"HostedZoneId": "Z123"}, NoManagedPolicies())
        cls.resources = cls.output["Resources"]

    def test_sam_adds_no_role_and_touches_none(self):
        roles = {k for k, v in self.resources.items() if v["Type"] == "AWS::IAM::Role"}
        self.assertEqual(roles, self.declared_roles)
        for name in roles:
            self.assertEqual(
                long_form(load()["Resources"][name]["Properties"]), self.resources[name]["Properties"], name
            )

    def test_functions_after_globals(self):
        functions = {k: v["Properties"] for k, v in self.resources.items() if v["Type"] == "AWS::Lambda::Function"}
        self.assertEqual(len(functions), 7)
        for name, props in functions.items():
            self.assertEqual(props["LoggingConfig"]["LogFormat"], "JSON", name)
            self.assertIn("LogGroup", props["LoggingConfig"], name)
            self.assertEqual(props["Environment"]["Variables"]["RUST_LOG"], "info", name)
            self.assertEqual(props["Runtime"], "provided.al2023", name)
            self.assertNotIn("TracingConfig", props, name)


if __name__ == "__main__":
    unittest.main()
