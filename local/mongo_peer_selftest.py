"""Self-test of local/mongo_peer.py, the emulated MongoDB replica set.

No mongod is installable where the ninelives tests run, so they talk to
mongo_peer.py instead; this script checks that the peer answers the way the
tests (and MongoDB 4.4+) expect before anyone relies on it. It starts the
peer as a subprocess (three members: two data and an arbiter, and two
spares: one data, one arbiter), drives it with pymongo the way the Rust
driver does (one direct connection per member), prints one line per check
and exits 1 if any check failed (0 when all passed). It also checks that
the peer exits when its stdin closes or on SIGTERM, and refuses bad specs
with exit code 2. It takes a few seconds and always ends the peers it
started.

    /tmp/mvenv/bin/python local/mongo_peer_selftest.py   # or any python with pymongo and mockupdb
"""

import copy
import datetime
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

from bson import Int64, ObjectId, Timestamp
from pymongo import MongoClient
from pymongo.errors import NotPrimaryError, OperationFailure

PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mongo_peer.py")
SET = "rs0.selftest.example.com"
failures = []


def check(description, condition, detail=""):
    print(f"{'ok  ' if condition else 'FAIL'} {description}" + ("" if condition or not detail else f": {detail}"),
          flush=True)
    if not condition:
        failures.append(description)


def loopback_addresses(count):
    """The first `count` of 127.0.0.2.. that can be bound (all of 127/8 on Linux)."""
    found = []
    for i in range(2, 255):
        with socket.socket() as s:
            try:
                s.bind((f"127.0.0.{i}", 0))
            except OSError:
                continue
        found.append(f"127.0.0.{i}")
        if len(found) == count:
            return found
    raise SystemExit(f"only {found} of 127.0.0.2-254 can be bound")


def start_peer(spec):
    """The peer process and its ready line (a dict)."""
    proc = subprocess.Popen([sys.executable, PEER, "--spec", json.dumps(spec)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    line = proc.stdout.readline() if ready else b""
    if not line:
        proc.kill()
        raise SystemExit(f"the peer did not print its ready line (exit {proc.poll()})")
    return proc, json.loads(line)


def split(address):
    host, port = address.rsplit(":", 1)
    return host, int(port)


def refuses(address):
    try:
        socket.create_connection(split(address), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


class Clients:
    """One direct pymongo client per address, as the Rust adapter keeps."""

    def __init__(self):
        self.live, self.retired = {}, []

    def get(self, address):
        if address not in self.live:
            host, port = split(address)
            self.live[address] = MongoClient(host, port, directConnection=True, serverSelectionTimeoutMS=3000)
        return self.live[address]

    def forget(self, address):
        # After a server was down its pooled connections are dead; a new
        # client starts clean. The old one is closed at the end, when every
        # server is up (closing sends endSessions).
        if address in self.live:
            self.retired.append(self.live.pop(address))

    def close(self):
        for client in list(self.live.values()) + self.retired:
            client.close()

    def run(self, address, command):
        return self.get(address).admin.command(command)

    def fails(self, address, command):
        """The error reply of a command expected to fail, or None if it succeeded."""
        try:
            self.run(address, command)
        except OperationFailure as e:
            return Refusal(e.details)
        except NotPrimaryError as e:  # pymongo's own class for 10107 and kin
            return Refusal(e.details)
        return None


class Refusal:
    """An error reply: its code and the whole document."""

    def __init__(self, details):
        self.details = details or {}
        self.code = self.details.get("code")

    def __repr__(self):
        return repr(self.details)


def without_term(config):
    new = copy.deepcopy(config)
    new.pop("term", None)
    return new


def dig(doc, path):
    """The value at a dotted path of nested dicts, or None."""
    for key in path.split("."):
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def member(_id, host, arbiter=False, votes=1, priority=None):
    return {"_id": _id, "host": host, "arbiterOnly": arbiter, "buildIndexes": True, "hidden": False,
            "priority": priority if priority is not None else (0.0 if arbiter else 1.0), "tags": {},
            "secondaryDelaySecs": Int64(0), "votes": votes}


def main_checks(c, ready, ips):
    m, s = ready["members"], ready["spares"]
    control = ready["control"]
    ctl = lambda verb, **kw: c.run(control, {"ninelivesPeer": verb, **kw})
    state = lambda: ctl("state")

    check("ready line has set, members, spares, control in spec order",
          ready["set"] == SET and [split(a)[0] for a in m + s] == ips and len(m) == 3 and len(s) == 2
          and split(control)[0] == "127.0.0.1", ready)

    # ---- hello ----
    h = c.run(m[0], {"hello": 1})
    check("hello on the primary", h.get("isWritablePrimary") is True and h.get("secondary") is False
          and h.get("setName") == SET and h.get("setVersion") == 1 and h.get("me") == m[0]
          and h.get("primary") == m[0] and isinstance(h.get("electionId"), ObjectId)
          and h.get("hosts") == m[:2] and h.get("arbiters") == [m[2]] and h.get("maxWireVersion") == 21
          and "topologyVersion" not in h and "lastWriteDate" in h.get("lastWrite", {}), h)
    election_1 = h.get("electionId")
    h = c.run(m[0], {"isMaster": 1, "helloOk": True})
    check("isMaster answers with ismaster, not isWritablePrimary",
          h.get("ismaster") is True and "isWritablePrimary" not in h, h)
    h = c.run(m[1], {"ismaster": 1})
    check("ismaster (lowercase) on the secondary", h.get("ismaster") is False and h.get("secondary") is True, h)
    h = c.run(m[1], {"hello": 1, "helloOk": True, "backpressure": True, "compression": [],
                     "client": {"driver": {"name": "selftest", "version": "0"}}})
    check("hello on the secondary (driver fields tolerated)", h.get("secondary") is True
          and h.get("isWritablePrimary") is False and h.get("primary") == m[0] and "electionId" not in h, h)
    h = c.run(m[2], {"hello": 1})
    check("hello on the arbiter", h.get("arbiterOnly") is True and h.get("secondary") is False
          and h.get("isWritablePrimary") is False and h.get("setName") == SET, h)
    for spare in s:
        h = c.run(spare, {"hello": 1})
        check(f"hello on spare {spare}: no set yet", "setName" not in h and h.get("isreplicaset") is True
              and h.get("isWritablePrimary") is False and h.get("me") == spare
              and h.get("info") == "Does not have a valid replica set config", h)
    e = c.fails(m[0], {"HELLO": 1})
    check("command names are case-sensitive (HELLO unknown)", e is not None and e.code == 59, e)

    # ---- status and config ----
    st = c.run(m[1], {"replSetGetStatus": 1})
    rows = st.get("members", [])
    check("replSetGetStatus on the secondary", st.get("set") == SET and st.get("myState") == 2
          and [r["state"] for r in rows] == [1, 2, 7] and [r["stateStr"] for r in rows] == ["PRIMARY", "SECONDARY", "ARBITER"]
          and [r["name"] for r in rows] == m and all(r["health"] == 1.0 for r in rows)
          and [r.get("self", False) for r in rows] == [False, True, False]
          and "optimeDate" in rows[0] and "optimeDate" not in rows[2], st)
    e = c.fails(s[0], {"replSetGetStatus": 1})
    check("replSetGetStatus on a spare: 94 NotYetInitialized",
          e is not None and e.code == 94 and e.details.get("codeName") == "NotYetInitialized", e)
    config = c.run(m[2], {"replSetGetConfig": 1})["config"]
    cm = config["members"]
    check("replSetGetConfig on the arbiter: the initial config", config["_id"] == SET and config["version"] == 1
          and config["term"] == 1 and isinstance(config["protocolVersion"], Int64)
          and [x["host"] for x in cm] == m and [x["_id"] for x in cm] == [0, 1, 2]
          and [x["priority"] for x in cm] == [1.0, 1.0, 0.0] and all(type(x["priority"]) is float for x in cm)
          and [x["arbiterOnly"] for x in cm] == [False, False, True] and all(x["votes"] == 1 for x in cm)
          and all(isinstance(x["secondaryDelaySecs"], Int64) for x in cm)
          and isinstance(config["settings"]["replicaSetId"], ObjectId)
          and config["settings"]["getLastErrorDefaults"] == {"w": 1, "wtimeout": 0}, config)
    e = c.fails(s[1], {"replSetGetConfig": 1})
    check("replSetGetConfig on a spare: 94", e is not None and e.code == 94, e)

    # ---- reconfig ----
    add_spare = without_term(config)
    add_spare["version"] = 2
    add_spare["members"].append(member(3, s[0]))
    e = c.fails(m[1], {"replSetReconfig": add_spare})
    check("reconfig on a secondary: 10107 NotWritablePrimary", e is not None and e.code == 10107
          and "Current state SECONDARY" in str(e.details.get("errmsg")), e)
    same = dict(add_spare, version=1)
    e = c.fails(m[0], {"replSetReconfig": same})
    check("reconfig with the same version: 103 naming the version",
          e is not None and e.code == 103 and "version" in e.details.get("errmsg", ""), e)
    e = c.fails(m[0], {"replSetReconfig": dict(add_spare, _id="other")})
    check("reconfig of another set name: 103", e is not None and e.code == 103, e)
    e = c.fails(m[0], {"replSetReconfig": add_spare, "force": True})
    check("forced reconfig: 72 InvalidOptions", e is not None and e.code == 72, e)
    c.run(m[0], {"replSetReconfig": add_spare, "maxTimeMS": 10000})
    now = state()
    check("reconfig adding the spare is stored, with the term", now["config"]["version"] == 2
          and now["config"]["term"] == 1 and now["config"]["members"][3]["host"] == s[0], now["config"])
    h = c.run(s[0], {"hello": 1})
    check("the added spare is a SECONDARY with the new setVersion", h.get("secondary") is True
          and h.get("setVersion") == 2 and h.get("setName") == SET and h.get("primary") == m[0], h)
    h = c.run(m[2], {"hello": 1})
    check("the other members list it in hosts", h.get("hosts") == m[:2] + [s[0]] and h.get("setVersion") == 2, h)
    servers = {x["host"]: x for x in now["servers"]}
    check("state: servers' roles", [servers[a]["state"] for a in m + s] ==
          ["PRIMARY", "SECONDARY", "ARBITER", "SECONDARY", "SPARE"] and servers[s[0]]["member"] is True
          and servers[s[1]]["member"] is False, now["servers"])

    base = c.run(m[0], {"replSetGetConfig": 1})["config"]
    nowhere = f"{ips[0]}:1"  # a host nobody listens on
    two = without_term(base)
    two["version"] = 3
    two["members"] += [member(4, s[1], arbiter=True), member(5, nowhere)]
    e = c.fails(m[0], {"replSetReconfig": two})
    check("adding two voting members at once: 103", e is not None and e.code == 103 and e.details.get("errmsg") ==
          "Non force replica set reconfig can only add or remove at most 1 voting member.", e)
    eight = without_term(base)
    eight["version"] = 3
    eight["members"] += [member(10 + i, f"{ips[0]}:{10 + i}") for i in range(4)]
    e = c.fails(m[0], {"replSetReconfig": eight})
    check("8 voting members: 93 InvalidReplicaSetConfig",
          e is not None and e.code == 93 and e.details.get("codeName") == "InvalidReplicaSetConfig", e)
    no_primary = without_term(base)
    no_primary["version"] = 3
    no_primary["members"] = [x for x in no_primary["members"] if x["host"] != m[0]]
    e = c.fails(m[0], {"replSetReconfig": no_primary})
    check("removing the primary: 74 NodeNotFound", e is not None and e.code == 74, e)
    dup = without_term(base)
    dup["version"] = 3
    dup["members"].append(member(3, s[1], arbiter=True))
    e = c.fails(m[0], {"replSetReconfig": dup})
    check("a duplicate _id: 93", e is not None and e.code == 93, e)
    nonvoting = without_term(base)
    nonvoting["version"] = 3
    nonvoting["members"].append(member(4, s[1], votes=0, priority=1.0))
    e = c.fails(m[0], {"replSetReconfig": nonvoting})
    check("votes 0 with priority 1: 93", e is not None and e.code == 93, e)
    check("refused reconfigs changed nothing", state()["config"]["version"] == 2)

    # ---- fail injection ----
    add_arbiter = without_term(base)
    add_arbiter["version"] = 3
    add_arbiter["members"].append(member(4, s[1], arbiter=True))
    ctl("fail", command="replSetReconfig", times=1, code=11600, codeName="InterruptedAtShutdown",
        errmsg="injected")
    e = c.fails(m[0], {"replSetReconfig": add_arbiter})
    check("an injected failure answers first", e is not None and e.code == 11600
          and e.details.get("codeName") == "InterruptedAtShutdown" and e.details.get("errmsg") == "injected", e)
    check("... and does nothing", state()["config"]["version"] == 2)
    c.run(m[0], {"replSetReconfig": add_arbiter})
    h = c.run(s[1], {"hello": 1})
    check("only `times` requests fail: the retry adds the spare arbiter",
          h.get("arbiterOnly") is True and h.get("setVersion") == 3, h)

    # ---- step-down ----
    e = c.fails(m[1], {"replSetStepDown": 60, "secondaryCatchUpPeriodSecs": 10})
    check("stepDown on a secondary: 10107", e is not None and e.code == 10107
          and e.details.get("errmsg") == "not primary so can't step down", e)
    e = c.fails(m[0], {"replSetStepDown": 10, "secondaryCatchUpPeriodSecs": 10})
    check("stepDown no longer than its catch-up: 2 BadValue", e is not None and e.code == 2, e)
    c.run(m[0], {"replSetStepDown": 60, "secondaryCatchUpPeriodSecs": 10})
    now = state()
    h = c.run(m[1], {"hello": 1})
    check("stepDown: the lowest-_id electable secondary is primary, the term grew",
          now["primary"] == m[1] and now["term"] == 2 and h.get("isWritablePrimary") is True
          and h.get("electionId", ObjectId("0" * 24)) > election_1, (now["primary"], now["term"], h))
    h = c.run(m[0], {"hello": 1})
    check("the old primary is a secondary", h.get("secondary") is True and h.get("primary") == m[1], h)
    sent = [x for x in ctl("log")["log"] if x["command"] == "replSetStepDown" and x["server"] == m[0]]
    check("the log has the step-down as sent", bool(sent) and sent[-1]["body"].get("secondaryCatchUpPeriodSecs") == 10
          and sent[-1]["body"].get("replSetStepDown") == 60, sent)

    # ---- down and up ----
    t0 = time.monotonic()
    ctl("setDown", host=m[0], down=True)
    took = time.monotonic() - t0
    c.forget(m[0])
    check(f"setDown: the server refuses connections ({took:.1f} s)", refuses(m[0]))
    rows = {r["name"]: r for r in c.run(m[1], {"replSetGetStatus": 1})["members"]}
    check("... and the others report it unhealthy", rows[m[0]]["health"] == 0.0 and rows[m[0]]["state"] == 8
          and rows[m[0]]["stateStr"] == "(not reachable/healthy)" and rows[m[1]]["health"] == 1.0, rows[m[0]])
    check("state lists it as down", m[0] in state()["down"])
    ctl("setDown", host=s[0], down=True)
    c.forget(s[0])
    e = c.fails(m[1], {"replSetStepDown": 60, "secondaryCatchUpPeriodSecs": 10})
    check("stepDown with no electable secondary: 262 ExceededTimeLimit", e is not None and e.code == 262
          and e.details.get("errmsg", "").startswith("No electable secondaries caught up as of "), e)
    check("... and the primary stays", state()["primary"] == m[1])
    ctl("setDown", host=m[0], down=False)
    ctl("setDown", host=s[0], down=False)
    h = c.run(m[0], {"hello": 1})
    check("setDown false: back on the same host and port", not refuses(m[0]) and h.get("me") == m[0]
          and h.get("secondary") is True, h)
    rows = c.run(m[1], {"replSetGetStatus": 1})["members"]
    check("... and healthy again", all(r["health"] == 1.0 for r in rows) and c.run(s[0], {"ping": 1})["ok"] == 1.0,
          rows)
    ctl("setDown", host=m[1], down=True)
    c.forget(m[1])
    h = c.run(m[0], {"hello": 1})
    check("the primary down: no primary until the test names one",
          state()["primary"] is None and "primary" not in h and h.get("secondary") is True, h)
    ctl("setDown", host=m[1], down=False)

    # ---- setPrimary ----
    term = state()["term"]
    ctl("setPrimary", host=m[0])
    h = c.run(m[0], {"hello": 1})
    check("setPrimary: the member is primary, the term grew", state()["term"] == term + 1
          and h.get("isWritablePrimary") is True and h.get("primary") == m[0], h)
    ctl("setPrimary", host=None)
    h = c.run(m[0], {"hello": 1})
    check("setPrimary null: all data members secondary, no primary", h.get("isWritablePrimary") is False
          and h.get("secondary") is True and "primary" not in h and state()["primary"] is None, h)
    e = c.fails(control, {"ninelivesPeer": "setPrimary", "host": m[2]})
    check("setPrimary on an arbiter is refused", e is not None, e)
    ctl("setPrimary", host=m[0])
    through_member = c.run(m[1], {"ninelivesPeer": "state"})
    check("control commands work through any live member", through_member.get("primary") == m[0])

    # ---- other commands and the log ----
    ctl("clearLog")
    check("ping", c.run(m[1], {"ping": 1}).get("ok") == 1.0)
    c.run(m[1], {"replSetGetConfig": 1})
    b = c.run(m[2], {"buildInfo": 1})
    check("buildInfo", b.get("version") == "7.0.15" and b.get("versionArray") == [7, 0, 15, 0], b)
    check("getParameter", c.run(m[1], {"getParameter": 1, "featureCompatibilityVersion": 1}).get("ok") == 1.0)
    e = c.fails(m[1], {"fooBar": 1})
    check("an unknown command: 59 CommandNotFound", e is not None and e.code == 59
          and e.details.get("errmsg") == "no such command: 'fooBar'", e)
    log = ctl("log", exclude=["hello", "isMaster", "ismaster", "ping", "endSessions"])["log"]
    check("log: arrival order, exclusions, no control commands",
          [(x["server"], x["command"]) for x in log] ==
          [(m[1], "replSetGetConfig"), (m[2], "buildInfo"), (m[1], "getParameter"), (m[1], "fooBar")], log)
    body = log[0]["body"] if log else {}
    check("log bodies are the commands without the driver's envelope", body.get("replSetGetConfig") == 1
          and not {"lsid", "$db", "$clusterTime", "$readPreference"} & set(body), body)
    check("log without exclude has the pings", any(x["command"] == "ping" for x in ctl("log")["log"]))

    # ---- serverStatus and lag (publish-metrics) ----
    # Here m[0] is primary; m[1] and s[0] are data secondaries, m[2] and
    # s[1] arbiters.
    p = c.run(m[0], {"serverStatus": 1})
    figures = ["globalLock.currentQueue.total", "globalLock.currentQueue.readers", "globalLock.currentQueue.writers",
               "globalLock.activeClients.total", "globalLock.activeClients.readers",
               "globalLock.activeClients.writers", "mem.resident", "mem.virtual", "connections.current",
               "connections.available", "metrics.cursor.open.total", "wiredTiger.cache.bytes currently in the cache",
               "wiredTiger.cache.maximum bytes configured"] + [f"opcounters.{k}" for k in
                                                               ("insert", "query", "update", "delete", "getmore",
                                                                "command")]
    check("serverStatus on the primary: a 7.0 member's sections", p.get("version") == "7.0.15"
          and p.get("process") == "mongod" and p.get("host") == m[0]
          and isinstance(p.get("localTime"), datetime.datetime)
          and all(isinstance(dig(p, f), int) for f in figures) and dig(p, "mem.bits") == 64
          and dig(p, "mem.supported") is True and "mapped" not in p["mem"] and "backgroundFlushing" not in p
          and dig(p, "repl.isWritablePrimary") is True and dig(p, "repl.secondary") is False
          and dig(p, "repl.setName") == SET and dig(p, "repl.primary") == m[0] and dig(p, "repl.me") == m[0]
          and dig(p, "repl.hosts") == [m[0], m[1], s[0]] and "locks" in p, p)
    q = c.run(m[1], {"serverStatus": 1, "locks": 0, "wiredTiger": 0, "nonsense": 0})
    check("serverStatus on a secondary: its own figures; {section: 0} leaves it out",
          dig(q, "repl.isWritablePrimary") is False and dig(q, "repl.secondary") is True and q.get("host") == m[1]
          and dig(q, "mem.resident") != dig(p, "mem.resident") and "locks" not in q and "wiredTiger" not in q
          and "globalLock" in q, q)
    h = c.run(s[1], {"serverStatus": 1})
    check("serverStatus on an arbiter says arbiterOnly; the control server has no repl",
          dig(h, "repl.arbiterOnly") is True and dig(h, "repl.isWritablePrimary") is False
          and "repl" not in c.run(control, {"serverStatus": 1}), h.get("repl"))
    ctl("setStatus", host=m[1], path="globalLock.currentQueue.total", value=7)
    ctl("setStatus", host=m[1], path="mem.resident", value="x")
    ctl("setStatus", host=m[1], path="wiredTiger.cache.maximum bytes configured", value=Int64(2 ** 33))
    ctl("setStatus", host=m[1], path="connections.available", unset=True)
    ctl("setStatus", host=m[1], path="metrics.cursor.open.total", value=3)
    ctl("setStatus", host=m[1], path="metrics.cursor.open.total", value=4)  # the later one wins
    q = c.run(m[1], {"serverStatus": 1})
    check("setStatus: numbers, strings and unset at dotted paths, on that member only",
          dig(q, "globalLock.currentQueue.total") == 7 and dig(q, "mem.resident") == "x"
          and dig(q, "wiredTiger.cache.maximum bytes configured") == 2 ** 33
          and "available" not in q["connections"] and dig(q, "metrics.cursor.open.total") == 4
          and dig(q, "globalLock.currentQueue.readers") == 0
          and dig(c.run(m[0], {"serverStatus": 1}), "mem.resident") == dig(p, "mem.resident"), q)
    e = c.fails(control, {"ninelivesPeer": "setStatus", "host": m[1], "path": "a..b", "value": 1})
    e2 = c.fails(control, {"ninelivesPeer": "setStatus", "host": "127.0.0.1:1", "path": "mem.resident", "value": 1})
    e3 = c.fails(control, {"ninelivesPeer": "setStatus", "host": m[1], "path": "mem.resident"})
    check("setStatus refuses a bad path, an unknown host, no value", e is not None and e2 is not None
          and e3 is not None and e.code == 2, (e, e2, e3))
    ctl("clearStatus", host=m[1])
    q = c.run(m[1], {"serverStatus": 1})
    check("clearStatus: the generated figures again", isinstance(dig(q, "mem.resident"), int)
          and isinstance(dig(q, "connections.available"), int), q)

    dates = lambda st: {r["name"]: r.get("optimeDate") for r in st["members"]}
    st = c.run(m[1], {"replSetGetStatus": 1})
    d = dates(st)
    check("replSetGetStatus: optimeDate and optime for every data member, caught up",
          all(isinstance(d[x], datetime.datetime) for x in (m[0], m[1], s[0])) and d[m[2]] is None
          and d[s[1]] is None and d[m[0]] == d[m[1]] == d[s[0]]
          and all(isinstance(r.get("optime", {}).get("ts"), Timestamp) for r in st["members"] if r["name"] != m[2]
                  and r["name"] != s[1]), st["members"])
    ctl("setLag", host=m[1], seconds=2.5)
    ctl("setLag", host=s[0], seconds=30)
    ctl("setLag", host=m[0], seconds=99)  # the primary's is ignored while it is primary
    d = dates(c.run(m[0], {"replSetGetStatus": 1}))
    behind = {x: (d[m[0]] - d[x]).total_seconds() for x in (m[0], m[1], s[0])}
    check("setLag: a member's optimeDate is the primary's less its lag", behind == {m[0]: 0.0, m[1]: 2.5, s[0]: 30.0},
          behind)
    e = c.fails(control, {"ninelivesPeer": "setLag", "host": m[2], "seconds": 1})
    e2 = c.fails(control, {"ninelivesPeer": "setLag", "host": m[1], "seconds": -1})
    check("setLag refuses an arbiter and a negative lag", e is not None and e2 is not None, (e, e2))
    ctl("setDown", host=s[0], down=True)
    c.forget(s[0])
    rows = {r["name"]: r for r in c.run(m[0], {"replSetGetStatus": 1})["members"]}
    check("a down member's optimeDate is the epoch, as mongod reports it",
          rows[s[0]]["optimeDate"].year == 1970 and rows[s[0]]["optime"]["t"] == -1, rows[s[0]])
    ctl("setDown", host=s[0], down=False)
    for x in (m[0], m[1], s[0]):
        ctl("setLag", host=x, seconds=0)


def lifecycle_checks(ips):
    for spec, why in ((('{"set": ""}'), "an empty set name"),
                      (json.dumps({"set": "x", "members": [{"host": ips[0], "arbiter": True}], "primary": 0}),
                       "an arbiter as primary")):
        proc = subprocess.run([sys.executable, PEER, "--spec", spec], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=10)
        check(f"a bad spec ({why}) exits 2 with a message", proc.returncode == 2 and b"bad spec" in proc.stderr
              and not proc.stdout, (proc.returncode, proc.stderr))
    proc, ready = start_peer({"set": "solo", "members": [{"host": ips[0]}], "primary": False})
    try:
        client = MongoClient(*split(ready["members"][0]), directConnection=True, serverSelectionTimeoutMS=3000)
        h = client.admin.command("hello")
        client.close()
        check('"primary": false starts without a primary', h.get("secondary") is True and "primary" not in h, h)
        proc.send_signal(signal.SIGTERM)
        check("SIGTERM: the peer exits 0", proc.wait(10) == 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main():
    started = time.monotonic()
    ips = loopback_addresses(5)
    spec = {"set": SET, "members": [{"host": ips[0]}, {"host": ips[1]}, {"host": ips[2], "arbiter": True}],
            "spares": [{"host": ips[3]}, {"host": ips[4], "arbiter": True}], "primary": 0}
    proc, ready = start_peer(spec)
    clients = Clients()
    try:
        try:
            main_checks(clients, ready, ips)
        except Exception as e:  # a broken step makes the following ones meaningless
            check("the checks ran to the end", False, f"{type(e).__name__}: {e}")
        clients.close()
        proc.stdin.close()
        try:
            code = proc.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        check("stdin closed: the peer stops its servers and exits 0", code == 0, code)
        check("... and its ports are closed", all(refuses(a) for a in ready["members"] + ready["spares"]))
        lifecycle_checks(ips)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"{'FAILED: ' + str(len(failures)) if failures else 'all passed'} "
          f"({time.monotonic() - started:.1f} s)", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
