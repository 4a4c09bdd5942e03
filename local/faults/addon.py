"""Fault injection between the functions and the local AWS (a mitmproxy addon).

Run by scripts/fault-proxy.sh (or tests/support/faults.rs) as
`mitmdump --mode reverse:http://127.0.0.1:<moto port> -s local/faults/addon.py`.
Every AWS request passes through here on its way to moto. Faults are chosen per
AWS region, read from the SigV4 credential scope of the Authorization header,
so tests that run at the same time in different regions get different faults
from one proxy. A rule is deterministic: it fires on every k-th matching
request of its region (optionally only for given operations), so a run is
reproducible and a test can say which call it hit.

Control route (answered here, never forwarded), documented in
local/faults/README.md:

    PUT    /_faults/rules/<region>   JSON list of rules; replaces the region's
    DELETE /_faults/rules/<region>   no rules, counters reset
    GET    /_faults/counts/<region>  what was seen and injected (JSON)

A rule: {"kind": ..., "every": k, "offset": 0, "ops": ["CreateSnapshots"],
"max": n, "hold_ms": ms, "delay_ms": ms, "code": "PriorRequestNotComplete"}.
`kind` is one of throttle, http503, latency, hang_before, hang_after,
drop_before, drop_after.
"""

import asyncio
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from mitmproxy import http

KINDS = {"throttle", "http503", "latency", "hang_before", "hang_after", "drop_before", "drop_after"}
CREDENTIAL = re.compile(r"Credential=[^/,]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
CONTROL = "/_faults/"


@dataclass
class Rule:
    kind: str
    every: int = 1
    offset: int = 0
    ops: list[str] | None = None
    max: int | None = None
    hold_ms: int = 30_000
    delay_ms: int = 500
    code: str | None = None
    seen: int = 0
    fired: int = 0

    @staticmethod
    def parse(raw: dict) -> "Rule":
        kind = raw.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, not {kind!r}")
        every = int(raw.get("every", 1))
        if every < 1:
            raise ValueError("every must be at least 1")
        ops = raw.get("ops")
        if ops is not None and not (isinstance(ops, list) and all(isinstance(o, str) for o in ops)):
            raise ValueError("ops must be a list of operation names")
        known = {"kind", "every", "offset", "ops", "max", "hold_ms", "delay_ms", "code"}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown rule fields {sorted(unknown)}")
        return Rule(
            kind=kind,
            every=every,
            offset=int(raw.get("offset", 0)),
            ops=ops,
            max=None if raw.get("max") is None else int(raw["max"]),
            hold_ms=int(raw.get("hold_ms", 30_000)),
            delay_ms=int(raw.get("delay_ms", 500)),
            code=raw.get("code"),
        )

    def matches(self, op: str) -> bool:
        return self.ops is None or op in self.ops

    def fires(self) -> bool:
        """Counts one matching request; true when this one gets the fault."""
        self.seen += 1
        if self.max is not None and self.fired >= self.max:
            return False
        if self.seen <= self.offset or (self.seen - self.offset) % self.every != 0:
            return False
        self.fired += 1
        return True


@dataclass
class Region:
    rules: list[Rule] = field(default_factory=list)
    seen: int = 0
    ops: dict[str, int] = field(default_factory=dict)
    # One entry per injected fault, in order: {"op", "kind", "service"}.
    injected: list[dict] = field(default_factory=list)


class Faults:
    def __init__(self) -> None:
        # Hooks run on mitmproxy's event loop, but keep the tables consistent
        # should a hook ever run elsewhere.
        self.lock = threading.Lock()
        self.regions: dict[str, Region] = {}

    # --- control route ---------------------------------------------------------

    def control(self, flow: http.HTTPFlow) -> None:
        parts = flow.request.path.split("?")[0][len(CONTROL):].strip("/").split("/")
        method = flow.request.method
        try:
            if len(parts) == 2 and parts[0] == "rules" and method == "PUT":
                raw = json.loads(flow.request.get_text() or "[]")
                if not isinstance(raw, list):
                    raise ValueError("the body must be a JSON list of rules")
                rules = [Rule.parse(r) for r in raw]
                with self.lock:
                    self.regions[parts[1]] = Region(rules=rules)
                answer(flow, 200, {"region": parts[1], "rules": len(rules)})
            elif len(parts) == 2 and parts[0] == "rules" and method == "DELETE":
                with self.lock:
                    self.regions.pop(parts[1], None)
                answer(flow, 200, {"region": parts[1], "rules": 0})
            elif len(parts) == 2 and parts[0] == "counts" and method == "GET":
                with self.lock:
                    r = self.regions.get(parts[1], Region())
                    body = {
                        "region": parts[1],
                        "seen": r.seen,
                        "ops": dict(r.ops),
                        "injected": list(r.injected),
                        "rules": [{"kind": x.kind, "seen": x.seen, "fired": x.fired} for x in r.rules],
                    }
                answer(flow, 200, body)
            elif parts == ["ping"]:
                answer(flow, 200, {"proxy": "ninelives-faults"})
            else:
                answer(flow, 404, {"error": f"no control route {method} {flow.request.path}"})
        except (ValueError, TypeError) as e:
            answer(flow, 400, {"error": str(e)})

    # --- the proxy -------------------------------------------------------------

    def choose(self, flow: http.HTTPFlow) -> Rule | None:
        """Records the request; the rule that fires on it, if any."""
        found = CREDENTIAL.search(flow.request.headers.get("authorization", ""))
        if not found:
            return None
        region_name, service = found.group(1), found.group(2)
        op = operation(flow.request, service)
        flow.metadata["faults"] = (region_name, service, op)
        with self.lock:
            region = self.regions.get(region_name)
            if region is None:
                return None
            region.seen += 1
            region.ops[op] = region.ops.get(op, 0) + 1
            for rule in region.rules:
                if rule.matches(op) and rule.fires():
                    region.injected.append({"op": op, "kind": rule.kind, "service": service})
                    return rule
        return None

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.request.path.startswith(CONTROL):
            self.control(flow)
            return
        rule = self.choose(flow)
        if rule is None:
            return
        _, service, op = flow.metadata["faults"]
        if rule.kind == "throttle":
            throttle(flow, service, rule.code)
        elif rule.kind == "http503":
            flow.response = http.Response.make(
                503, b"Service Unavailable", {"Content-Type": "text/plain"}
            )
        elif rule.kind == "latency":
            await asyncio.sleep(rule.delay_ms / 1000)
        elif rule.kind == "hang_before":
            # Never forwarded: moto does not see the request. The client's
            # attempt timeout gives up first and retries on a new connection.
            await asyncio.sleep(rule.hold_ms / 1000)
            kill(flow)
        elif rule.kind == "drop_before":
            kill(flow)
        else:
            # hang_after / drop_after act on the response, once moto has done
            # the work.
            flow.metadata["faults_after"] = rule

    async def response(self, flow: http.HTTPFlow) -> None:
        rule = flow.metadata.get("faults_after")
        if rule is None:
            return
        if rule.kind == "hang_after":
            await asyncio.sleep(rule.hold_ms / 1000)
        kill(flow)


def kill(flow: http.HTTPFlow) -> None:
    if flow.killable:
        flow.kill()


def answer(flow: http.HTTPFlow, status: int, body: dict) -> None:
    flow.response = http.Response.make(
        status, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )


def operation(request: http.Request, service: str) -> str:
    """The AWS operation of a request, in each protocol's own way."""
    target = request.headers.get("x-amz-target")
    if target:  # awsJson (SQS): "AmazonSQS.SendMessage"
        return target.rsplit(".", 1)[-1]
    action = request.query.get("Action")
    if not action and request.method == "POST":
        body = request.get_text(strict=False) or ""
        action = (parse_qs(body).get("Action") or [None])[0]
    if action:  # EC2 query, awsquery (autoscaling, monitoring, sns)
        return action
    if service == "route53":
        path = request.path.split("?")[0]
        if path.endswith("/rrset") and request.method == "POST":
            return "ChangeResourceRecordSets"
        if path.endswith("/rrset"):
            return "ListResourceRecordSets"
        if "/change/" in path:
            return "GetChange"
        if path.rstrip("/").endswith("/hostedzone") and request.method == "POST":
            return "CreateHostedZone"
        if "/hostedzone" in path:
            return "GetHostedZone" if request.method == "GET" else "HostedZone"
    return f"{request.method} {request.path.split('?')[0]}"


def throttle(flow: http.HTTPFlow, service: str, code: str | None) -> None:
    """A throttling answer in the shape the service's protocol really uses."""
    request_id = str(uuid.uuid4())
    if service == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
            f"<Code>{code or 'RequestLimitExceeded'}</Code><Message>Request limit exceeded.</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
        flow.response = http.Response.make(503, body.encode(), {"Content-Type": "text/xml"})
    elif flow.request.headers.get("x-amz-target"):
        body = {
            "__type": f"com.amazonaws.{service}#{code or 'ThrottlingException'}",
            "message": "Rate exceeded",
        }
        flow.response = http.Response.make(
            400,
            json.dumps(body).encode(),
            {
                "Content-Type": "application/x-amz-json-1.0",
                "x-amzn-RequestId": request_id,
                "x-amzn-query-error": f"{code or 'ThrottlingException'};Sender",
            },
        )
    else:
        # awsquery services and Route 53's restXml share this error shape.
        ns = (
            ' xmlns="https://route53.amazonaws.com/doc/2013-04-01/"'
            if service == "route53"
            else ""
        )
        body = (
            f"<ErrorResponse{ns}><Error><Type>Sender</Type><Code>{code or 'Throttling'}</Code>"
            f"<Message>Rate exceeded</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        flow.response = http.Response.make(
            400, body.encode(), {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}
        )


addons = [Faults()]
