"""An emulated MongoDB replica set for the ninelives tests.

No mongod can be installed where the tests run, yet mongo-endpoint,
replset-tasks and the lifecycle hook must be tested against members that
answer like MongoDB 4.4+ does. This script plays one replica set: every
member (and every "spare", a mongod started with --replSet that is not in
the set's config yet) is a `mockupdb.MockupDB` server listening on its own
loopback address (Linux routes all of 127/8 to lo), and all of them answer
from one shared, in-memory state: the config, the primary, the term, who is
down. It answers hello, replSetGetStatus, replSetGetConfig,
replSetReconfig (validated like a 4.4+ primary does), replSetStepDown and
serverStatus (a 7.0 member's, with the sections publish-metrics reads),
records every command, and lets tests steer it (who is primary, who is
down, which command fails next, any serverStatus figure, how far a member
lags) with `{ninelivesPeer: ...}` commands.

    python local/mongo_peer.py --spec '{"set": "rs0", "members": [{"host":
        "127.0.0.2"}, {"host": "127.0.0.4", "arbiter": true}],
        "spares": [{"host": "127.0.0.5"}], "primary": 0}'

`primary` is an index into members; absent or null means the first data
member, false means no primary. When every server listens it prints one
JSON line, {"set", "members", "spares", "control"} ("ip:port" strings, in
spec order; "control" is an extra server on 127.0.0.1 that only takes
hello and control commands and is never down), then serves until its stdin
reaches EOF (the test process holds the pipe, so the peer dies with it) or
SIGTERM/SIGINT, and exits 0. A bad spec exits 2 with a message on stderr.
"""

import argparse
import collections
import copy
import datetime
import json
import os
import signal
import sys
import threading
import time
import traceback
import weakref

from bson import Int64, ObjectId, Timestamp
from mockupdb import MockupDB

MAX_WIRE_VERSION = 21  # MongoDB 7.0
SERVER_VERSION = [7, 0, 15, 0]
HELLO_NAMES = ("hello", "isMaster", "ismaster")
# Fields drivers add to every command; not part of what the test sent.
ENVELOPE = ("lsid", "$clusterTime", "$db", "$readPreference")
LOG_LIMIT = 100_000  # a safety cap: monitoring hellos arrive forever
NOT_REACHABLE = "(not reachable/healthy)"
STATE_CODES = {"PRIMARY": 1, "SECONDARY": 2, "ARBITER": 7}


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
UNSET = object()  # a setStatus that removes a field


class SpecError(Exception):
    pass


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def error(code, code_name, errmsg):
    return {"ok": 0.0, "errmsg": errmsg, "code": code, "codeName": code_name}


def is_int(value):
    # bool is an int in Python but never a valid BSON integer here; Int64
    # is an int subclass, and MongoDB takes integral doubles as integers.
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def set_path(doc, path, value):
    """Sets (or, with UNSET, removes) a dotted path in nested dicts; a step
    that is missing or not a dict becomes an empty dict first."""
    *parents, leaf = path.split(".")
    for step in parents:
        if not isinstance(doc.get(step), dict):
            if value is UNSET:
                return
            doc[step] = {}
        doc = doc[step]
    if value is UNSET:
        doc.pop(leaf, None)
    else:
        doc[leaf] = value


def parse_spec(text):
    try:
        spec = json.loads(text)
    except ValueError as e:
        raise SpecError(f"--spec is not JSON: {e}")
    if not isinstance(spec, dict):
        raise SpecError("--spec must be a JSON object")
    if not isinstance(spec.get("set"), str) or not spec["set"]:
        raise SpecError('"set" must be a non-empty string')

    def servers(key, required):
        entries = spec.get(key, [])
        if not isinstance(entries, list) or (required and not entries):
            raise SpecError(f'"{key}" must be a{" non-empty" if required else "n"} array')
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("host"), str) or not entry["host"]:
                raise SpecError(f'{key}[{i}] must be an object with a "host" string')
            if not isinstance(entry.get("arbiter", False), bool):
                raise SpecError(f'{key}[{i}].arbiter must be a boolean')
        return [(e["host"], e.get("arbiter", False)) for e in entries]

    members = servers("members", True)
    spares = servers("spares", False)
    data = [i for i, (_, arbiter) in enumerate(members) if not arbiter]
    primary = spec.get("primary")
    # null means "the default" (tests/support/mongo.rs sends null for None),
    # so "no primary at start" is spelled false.
    if primary is None:
        if not data:
            raise SpecError("no data member to be the primary (use \"primary\": false)")
        primary = data[0]
    elif primary is False:
        primary = None
    elif not is_int(primary) or primary not in data:
        raise SpecError(f'"primary" must be the index of a data member {data}, null or false; got {primary!r}')
    return spec["set"], members, spares, primary


class BoundMockupDB(MockupDB):
    """A MockupDB on a given address: MockupDB itself always binds 'localhost'."""

    def __init__(self, host, port):
        super().__init__(port=port)
        if not hasattr(self, "_address"):
            raise RuntimeError("this mockupdb has no _address; mongo_peer.py needs mockupdb 1.8.1")
        self._address = (host, port)


class Server:
    """One listening mongod: a member, a spare, or the control server."""

    def __init__(self, ip, kind, arbiter=False, number=0):
        self.ip = ip
        self.kind = kind  # "member", "spare" or "control"
        self.arbiter = arbiter  # as in the spec; the config decides the role
        self.port = 0  # chosen by the OS on first listen, then kept
        self.listener = None
        self.down = False
        self.up_since = time.monotonic()
        # Serializes stopping and restarting this server's listener.
        self.lifecycle = threading.Lock()
        # Which of the set's servers it is: varies its default figures.
        self.number = number
        # serverStatus paths the tests set ("a.b.c" -> value), applied in
        # order over the generated document; UNSET removes the field.
        self.status_overrides = {}
        # Seconds its optimeDate is behind the primary's.
        self.lag = 0.0
        self.commands = 0  # answered, for opcounters.command

    @property
    def name(self):
        return f"{self.ip}:{self.port}"


class ReplicaSet:
    """The shared state of one emulated set and the answers of its servers."""

    def __init__(self, set_name, members, spares, primary):
        self.set_name = set_name
        self.lock = threading.RLock()  # mockupdb serves each connection on its own thread
        self.members = [Server(ip, "member", arb, i) for i, (ip, arb) in enumerate(members)]
        self.spares = [Server(ip, "spare", arb, len(members) + i) for i, (ip, arb) in enumerate(spares)]
        self.control = Server("127.0.0.1", "control")
        self.all = self.members + self.spares
        self.initial_primary = primary
        self.servers = {}  # "ip:port" -> Server, set members and spares
        self.config = None
        self.primary = None
        self.term = 1
        self.ever_member = set()
        self.log = collections.deque(maxlen=LOG_LIMIT)
        self.failures = {}  # command name -> [times left, error reply]
        self.connection_ids = weakref.WeakKeyDictionary()  # client socket -> connectionId
        self.next_connection_id = 1

    # ---- listening -------------------------------------------------------

    def listen(self, server):
        db = BoundMockupDB(server.ip, server.port)

        # mockupdb takes a plain function (not any callable) as a handler of
        # every request; it must reply and return True.
        def handler(request):
            return self.serve(server, request)

        db.autoresponds(handler)
        server.port = db.run()
        server.listener = db
        server.up_since = time.monotonic()

    def start(self):
        for server in self.all + [self.control]:
            self.listen(server)
        self.servers = {s.name: s for s in self.all}
        members = []
        for i, s in enumerate(self.members):
            members.append({
                "_id": i, "host": s.name, "arbiterOnly": s.arbiter, "buildIndexes": True,
                "hidden": False, "priority": 0.0 if s.arbiter else 1.0, "tags": {},
                "secondaryDelaySecs": Int64(0), "votes": 1,
            })
        self.config = {
            "_id": self.set_name, "version": 1, "term": 1, "protocolVersion": Int64(1),
            "writeConcernMajorityJournalDefault": True, "members": members,
            "settings": {
                "chainingAllowed": True, "heartbeatIntervalMillis": 2000, "heartbeatTimeoutSecs": 10,
                "electionTimeoutMillis": 10000, "catchUpTimeoutMillis": -1, "getLastErrorModes": {},
                "getLastErrorDefaults": {"w": 1, "wtimeout": 0}, "replicaSetId": ObjectId(),
            },
        }
        self.ever_member = {m["host"] for m in members}
        if self.initial_primary is not None:
            self.primary = self.members[self.initial_primary].name

    def ready_line(self):
        return {"set": self.set_name, "members": [s.name for s in self.members],
                "spares": [s.name for s in self.spares], "control": self.control.name}

    def stop(self):
        # mockupdb's stop() waits up to 1 s for its accept loop: stop all at once.
        threads = [threading.Thread(target=s.listener.stop) for s in self.all + [self.control] if s.listener]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)

    def change_listening(self, server, up, wait):
        """Stops or restarts a listener off the request thread.

        A handler runs holding its own MockupDB's lock and stop() takes
        that lock, so a server cannot stop itself from its own handler:
        the work is done by a thread. Returns None when done, "pending"
        when not done within `wait` s, or an error message.
        """
        done, outcome = threading.Event(), []

        def work():
            with server.lifecycle:
                try:
                    if not up and server.listener:
                        server.listener.stop()
                        server.listener = None
                    elif up and not server.listener:
                        # Same address and port: clients find it where it was.
                        self.listen(server)
                        with self.lock:
                            server.down = False
                except Exception as e:  # e.g. the port was taken meanwhile
                    outcome.append(f"cannot {'restart' if up else 'stop'} {server.name}: {e}")
                finally:
                    done.set()

        threading.Thread(target=work, daemon=True).start()
        if not done.wait(wait):
            return "pending"
        return outcome[0] if outcome else None

    # ---- the config, as the answers need it ------------------------------

    def member(self, host):
        return next((m for m in self.config["members"] if m.get("host") == host), None)

    @staticmethod
    def priority(m):
        return m.get("priority", 0.0 if m.get("arbiterOnly") else 1.0)

    def reachable(self, host):
        # A config host no server listens on is as dead as a down one.
        server = self.servers.get(host)
        return server is not None and not server.down

    def role(self, host):
        """PRIMARY, SECONDARY, ARBITER, or REMOVED/SPARE for a non-member."""
        m = self.member(host)
        if m is None:
            return "REMOVED" if host in self.ever_member else "SPARE"
        if m.get("arbiterOnly"):
            return "ARBITER"
        return "PRIMARY" if host == self.primary else "SECONDARY"

    # ---- serving ---------------------------------------------------------

    def serve(self, server, request):
        """The handler of every request on every server."""
        try:
            doc = request.doc
            if "$query" in doc:  # OP_QUERY (pymongo's first handshake) may wrap it
                doc = doc["$query"]
            name = next(iter(doc), "")
            with self.lock:
                if server.down:
                    # Between setDown and the listener's stop: say nothing.
                    try:
                        request.hangup()
                    except OSError:
                        pass
                    return True
                reply = self.answer(server, request, name, doc)
        except Exception:
            traceback.print_exc()
            reply = error(1, "InternalError", "mongo_peer: " + traceback.format_exc(limit=3))
        try:
            request.replies(reply)
        except OSError:
            pass  # the client went away; nothing to tell it
        return True

    def answer(self, server, request, name, doc):
        if name == "ninelivesPeer":
            return self.control_command(server, doc)
        body = {k: v for k, v in doc.items() if k not in ENVELOPE}
        self.log.append({"server": server.name, "command": name, "body": body})
        server.commands += 1
        failure = self.failures.get(name)
        if failure:
            failure[0] -= 1
            if failure[0] <= 0:
                del self.failures[name]
            return dict(failure[1])
        if name in HELLO_NAMES:
            return self.hello(server, request, name == "hello")
        if name in ("ping", "endSessions"):
            return {"ok": 1.0}
        if name in ("buildInfo", "buildinfo"):  # MongoDB registers both spellings
            return {"version": ".".join(map(str, SERVER_VERSION[:3])), "versionArray": SERVER_VERSION, "ok": 1.0}
        if name == "getParameter":
            reply = {"ok": 1.0}
            if "featureCompatibilityVersion" in doc:
                reply["featureCompatibilityVersion"] = {"version": "7.0"}
            return reply
        if name == "serverStatus":  # a standalone answers it too, without repl
            return self.server_status(server, doc)
        commands = {
            "replSetGetStatus": self.get_status,
            "replSetGetConfig": self.get_config,
            "replSetReconfig": self.reconfig,
            "replSetStepDown": self.step_down,
        }
        if name in commands:
            if server.kind == "control":
                return error(76, "NoReplicationEnabled", "not running with --replSet")
            return commands[name](server, doc)
        return error(59, "CommandNotFound", f"no such command: '{name}'")

    def connection_id(self, request):
        # Per connection, as mongod numbers them.
        sock = request._client
        if sock not in self.connection_ids:
            self.connection_ids[sock] = self.next_connection_id
            self.next_connection_id += 1
        return self.connection_ids[sock]

    def hello(self, server, request, modern):
        host = server.name
        writable_key = "isWritablePrimary" if modern else "ismaster"
        common = {
            "maxBsonObjectSize": 16777216, "maxMessageSizeBytes": 48000000, "maxWriteBatchSize": 100000,
            "localTime": now(), "logicalSessionTimeoutMinutes": 30, "connectionId": self.connection_id(request),
            "minWireVersion": 0, "maxWireVersion": MAX_WIRE_VERSION, "readOnly": False, "helloOk": True, "ok": 1.0,
        }
        # No topologyVersion anywhere: with it the driver would switch to
        # streaming (exhaust) hello, which mockupdb cannot serve.
        if server.kind == "control":
            return {writable_key: True, **common}
        m = self.member(host)
        if m is None:
            return {writable_key: False, "secondary": False, "isreplicaset": True,
                    "info": "Does not have a valid replica set config", "me": host, **common}
        role = self.role(host)
        members = self.config["members"]
        visible = [x for x in members if not x.get("hidden")]
        reply = {
            writable_key: role == "PRIMARY",
            "secondary": role == "SECONDARY",
            "setName": self.set_name,
            "setVersion": int(self.config["version"]),  # the driver reads an int32
            "hosts": [x["host"] for x in visible if not x.get("arbiterOnly") and self.priority(x) > 0],
            "passives": [x["host"] for x in visible if not x.get("arbiterOnly") and self.priority(x) == 0],
            "arbiters": [x["host"] for x in visible if x.get("arbiterOnly")],
        }
        if not reply["passives"]:
            del reply["passives"]
        if not reply["arbiters"]:
            del reply["arbiters"]
        if self.primary is not None:
            reply["primary"] = self.primary
        if role == "ARBITER":
            reply["arbiterOnly"] = True
        if m.get("hidden"):
            reply["hidden"] = True
        elif role != "ARBITER" and self.priority(m) == 0:
            reply["passive"] = True
        reply["me"] = host
        if role == "PRIMARY":
            # mongod's electionIds are 7fffffff followed by the term.
            reply["electionId"] = ObjectId("7fffffff" + format(self.term, "016x"))
        reply["lastWrite"] = {"lastWriteDate": now()}
        reply.update(common)
        return reply

    def not_initialized(self):
        return error(94, "NotYetInitialized", "no replset config has been received")

    def optime_dates(self, at):
        """Each reachable data member's optimeDate: the primary's is `at`,
        every other one `at` less its lag (all of them when there is no
        primary). Whole milliseconds, as BSON dates hold."""
        dates = {}
        for m in self.config["members"]:
            host = m["host"]
            if m.get("arbiterOnly") or not self.reachable(host):
                continue
            lag = 0.0 if host == self.primary else self.servers[host].lag
            dates[host] = at - datetime.timedelta(milliseconds=round(lag * 1000))
        return dates

    def get_status(self, server, doc):
        if self.member(server.name) is None:
            return self.not_initialized()
        entries, clock = [], time.monotonic()
        at = now()
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)
        optimes = self.optime_dates(at)
        for m in self.config["members"]:
            host = m["host"]
            entry = {"_id": m["_id"], "name": host}
            if self.reachable(host):
                role = self.role(host)
                entry.update(health=1.0, state=STATE_CODES[role], stateStr=role,
                             uptime=int(clock - self.servers[host].up_since))
            else:
                entry.update(health=0.0, state=8, stateStr=NOT_REACHABLE, uptime=0)
            if not m.get("arbiterOnly"):
                # As mongod: the epoch (and a null optime) for a member it
                # cannot hear from.
                date = optimes.get(host, EPOCH)
                seconds = int(date.timestamp())
                entry["optime"] = ({"ts": Timestamp(seconds, 1), "t": Int64(self.term)} if host in optimes
                                   else {"ts": Timestamp(0, 0), "t": Int64(-1)})
                entry["optimeDate"] = date
                entry["optimeDurableDate"] = date
            if host == server.name:
                entry["self"] = True
            entries.append(entry)
        return {"set": self.set_name, "date": at, "myState": STATE_CODES[self.role(server.name)],
                "term": Int64(self.term), "members": entries, "ok": 1.0}

    # ---- serverStatus ----------------------------------------------------

    def server_status(self, server, doc):
        """A 7.0 mongod's serverStatus: the sections publish-metrics reads
        (globalLock, mem, connections, opcounters, metrics.cursor, repl,
        wiredTiger.cache) and a few neighbours, each figure different per
        server, then the test's overrides. `{section: 0}` leaves a section
        out, as mongod does; other fields of the command are ignored."""
        n = server.number
        uptime = time.monotonic() - server.up_since
        reply = {
            "host": server.name, "version": ".".join(map(str, SERVER_VERSION[:3])), "process": "mongod",
            "pid": Int64(os.getpid()), "uptime": float(int(uptime)), "uptimeMillis": Int64(int(uptime * 1000)),
            "uptimeEstimate": Int64(int(uptime)), "localTime": now(),
            "asserts": {"regular": 0, "warning": 0, "msg": 0, "user": 3 + n, "tripwire": 0, "rollovers": 0},
            "connections": {"current": 10 + n, "available": 838850 - n, "totalCreated": Int64(100 + n),
                            "rejected": Int64(0), "active": 2 + n, "threaded": 10 + n,
                            "exhaustIsMaster": Int64(0), "exhaustHello": Int64(1),
                            "awaitingTopologyChanges": Int64(1)},
            "globalLock": {"totalTime": Int64(int(uptime * 1_000_000)),
                           "currentQueue": {"total": 0, "readers": 0, "writers": 0},
                           "activeClients": {"total": 1 + n, "readers": n, "writers": 1}},
            "locks": {"Global": {"acquireCount": {"r": Int64(1000 + n), "w": Int64(10 + n)}}},
            "mem": {"bits": 64, "resident": 100 + 10 * n, "virtual": 2500 + 10 * n, "supported": True},
            "opcounters": {"insert": Int64(10 * n), "query": Int64(100 + n), "update": Int64(5 * n),
                           "delete": Int64(n), "getmore": Int64(50 + n), "command": Int64(server.commands)},
            "metrics": {
                "cursor": {"moreThanOneBatch": Int64(0), "timedOut": Int64(0), "totalOpened": Int64(20 + n),
                           "lifespan": {"lessThan1Second": Int64(20 + n)},
                           "open": {"noTimeout": Int64(0), "pinned": Int64(0), "total": Int64(n)}},
                "document": {"deleted": Int64(n), "inserted": Int64(10 * n), "returned": Int64(300 + n),
                             "updated": Int64(5 * n)},
            },
            "wiredTiger": {"uri": "statistics:", "cache": {
                "bytes currently in the cache": Int64((64 + n) * 1024 * 1024),
                "maximum bytes configured": Int64(1024 * 1024 * 1024),
                "tracked dirty bytes in the cache": Int64(4096 * n),
            }},
        }
        repl = self.repl_section(server)
        if repl is not None:
            reply["repl"] = repl
        for key, value in doc.items():
            if key != "serverStatus" and key in reply and value in (0, False):
                del reply[key]
        for path, value in server.status_overrides.items():
            set_path(reply, path, value)
        reply["ok"] = 1.0
        return reply

    def repl_section(self, server):
        """serverStatus.repl: what hello says, without the wire figures;
        None for the control server (a mongod without --replSet has none)."""
        if server.kind == "control":
            return None
        host = server.name
        m = self.member(host)
        if m is None:
            return {"isWritablePrimary": False, "secondary": False, "isreplicaset": True,
                    "info": "Does not have a valid replica set config", "me": host, "rbid": 1}
        role = self.role(host)
        visible = [x for x in self.config["members"] if not x.get("hidden")]
        repl = {
            "hosts": [x["host"] for x in visible if not x.get("arbiterOnly") and self.priority(x) > 0],
            "arbiters": [x["host"] for x in visible if x.get("arbiterOnly")],
            "setName": self.set_name, "setVersion": int(self.config["version"]),
            "isWritablePrimary": role == "PRIMARY", "secondary": role == "SECONDARY",
        }
        if not repl["arbiters"]:
            del repl["arbiters"]
        if self.primary is not None:
            repl["primary"] = self.primary
        if role == "ARBITER":
            repl["arbiterOnly"] = True
        repl["me"] = host
        if role == "PRIMARY":
            repl["electionId"] = ObjectId("7fffffff" + format(self.term, "016x"))
        repl["rbid"] = 1
        return repl

    def get_config(self, server, doc):
        if self.member(server.name) is None:
            return self.not_initialized()
        return {"config": self.config, "ok": 1.0}

    # ---- reconfig --------------------------------------------------------

    def reconfig(self, server, doc):
        host = server.name
        role = self.role(host)
        if role == "SPARE":
            return self.not_initialized()
        if role != "PRIMARY":
            return error(10107, "NotWritablePrimary",
                         f"replSetReconfig should only be run on a writable PRIMARY. Current state {role};")
        if doc.get("force") is True:
            return error(72, "InvalidOptions", "force reconfig is not emulated by mongo_peer (the tests never force)")
        new = doc["replSetReconfig"]
        problem = self.check_config(new, host)
        if problem:
            return error(*problem)
        stored = copy.deepcopy(dict(new))
        stored["term"] = self.term
        self.config = stored
        # Hosts now in the config are members (their role follows from the
        # config); hosts dropped from it answer as non-members from now on.
        self.ever_member.update(m["host"] for m in stored["members"])
        return {"ok": 1.0}

    def check_config(self, new, me):
        """The first reason a 4.4+ primary would refuse `new`, as (code, codeName, errmsg), or None."""
        incompatible = lambda msg: (103, "NewReplicaSetConfigurationIncompatible", msg)
        invalid = lambda msg: (93, "InvalidReplicaSetConfig", msg)
        if not isinstance(new, dict):
            return 14, "TypeMismatch", "Expected replSetReconfig argument to be an object"
        if new.get("_id") != self.set_name:
            return incompatible(f"New and old configurations differ in replica set name; "
                                f"old was {self.set_name}, and new is {new.get('_id')}")
        old_version, version = self.config["version"], new.get("version")
        if not is_int(version) or version <= old_version:
            return incompatible(f"New replica set configuration version must be greater than old, "
                                f"but {version} is not greater than {old_version} for replica set {self.set_name}")
        members = new.get("members")
        if not isinstance(members, list) or not members:
            return invalid("members must be a non-empty array")
        ids, hosts = {}, {}
        for i, m in enumerate(members):
            where = f"members.{i}"
            if not isinstance(m, dict):
                return invalid(f"{where} must be an object")
            if not is_int(m.get("_id")) or m["_id"] < 0:
                return invalid(f"{where}._id must be an integer >= 0, got {m.get('_id')!r}")
            if not isinstance(m.get("host"), str) or not m["host"]:
                return invalid(f"{where}.host must be a non-empty string")
            if m["_id"] in ids:
                return invalid(f"Found two member configurations with same _id field, "
                               f"members.{ids[m['_id']]}._id == {where}._id == {m['_id']}")
            if m["host"] in hosts:
                return invalid(f"Found two member configurations with same host field, "
                               f"members.{hosts[m['host']]}.host == {where}.host == {m['host']}")
            ids[m["_id"]], hosts[m["host"]] = i, i
            for flag in ("arbiterOnly", "hidden"):
                if not isinstance(m.get(flag, False), bool):
                    return invalid(f"{where}.{flag} must be a boolean")
            if "newlyAdded" in m:
                return invalid(f"{where}: newlyAdded is set by the server, not by a reconfig")
            votes, priority = m.get("votes", 1), self.priority(m)
            if not is_int(votes) or votes not in (0, 1):
                return invalid(f"{where}.votes is {votes!r} but must be 0 or 1")
            if not is_number(priority) or not 0 <= priority <= 1000:
                return invalid(f"{where}.priority is {priority!r} but must be between 0 and 1000")
            if votes == 0 and priority != 0:
                return invalid(f"{where}: priority must be 0 when non-voting (votes:0)")
            if m.get("arbiterOnly") and priority != 0:
                return invalid(f"{where}: an arbiter must have priority 0")
            if m.get("hidden") and priority != 0:
                return invalid(f"{where}: priority must be 0 when hidden=true")
        if len(members) > 50:
            return invalid(f"Replica set configuration contains {len(members)} members, but must have no more than 50")
        voters = {m["host"] for m in members if m.get("votes", 1) == 1}
        if not 1 <= len(voters) <= 7:
            return invalid(f"Replica set configuration contains {len(voters)} voting members, "
                           f"but must be at least 1 and no more than 7")
        mine = next((m for m in members if m["host"] == me), None)
        if mine is None or mine.get("votes", 1) != 1:
            return 74, "NodeNotFound", (f"No host described in new configuration with version {version} "
                                        f"for replica set {self.set_name} maps to this node as a voting member")
        for old in self.config["members"]:
            same = next((m for m in members if m["host"] == old["host"]), None)
            if same is None:
                continue
            if same["_id"] != old["_id"]:
                return incompatible(f"New and old configurations both have members with host of {old['host']} "
                                    f"but in the new configuration the _id field is {same['_id']} "
                                    f"and in the old configuration it is {old['_id']}")
            if bool(same.get("arbiterOnly")) != bool(old.get("arbiterOnly")):
                return incompatible(f"New and old configurations differ in the setting of the arbiterOnly "
                                    f"field for member {old['host']}; to make this change, remove then re-add the member")
        old_voters = {m["host"] for m in self.config["members"] if m.get("votes", 1) == 1}
        if len(voters ^ old_voters) > 1:
            return incompatible("Non force replica set reconfig can only add or remove at most 1 voting member.")
        return None

    # ---- step-down -------------------------------------------------------

    def step_down(self, server, doc):
        if self.role(server.name) != "PRIMARY":
            return error(10107, "NotWritablePrimary", "not primary so can't step down")
        secs, force = doc["replSetStepDown"], doc.get("force") is True
        catch_up = doc.get("secondaryCatchUpPeriodSecs", 0 if force else 10)
        if not is_number(secs) or not is_number(catch_up):
            return error(14, "TypeMismatch", "replSetStepDown and secondaryCatchUpPeriodSecs must be numbers")
        secs = secs or 60  # as mongod: 0 means the default
        if secs <= catch_up:
            return error(2, "BadValue", "stepdown period must be longer than secondaryCatchUpPeriodSecs")
        electable = [m for m in self.config["members"]
                     if not m.get("arbiterOnly") and m.get("votes", 1) == 1 and self.priority(m) > 0
                     and m["host"] != self.primary and self.reachable(m["host"])]
        if not electable:
            if force:  # steps down with nobody to take over
                self.primary = None
                return {"ok": 1.0}
            stamp = now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+00:00"
            return error(262, "ExceededTimeLimit",
                         f"No electable secondaries caught up as of {stamp}. Please use the replSetStepDown "
                         f"command with the argument {{force: true}} to force node to step down.")
        winner = sorted(electable, key=lambda m: (-self.priority(m), m["_id"]))[0]
        self.primary = winner["host"]
        self.term += 1
        return {"ok": 1.0}

    # ---- control commands ------------------------------------------------

    def control_command(self, server, doc):
        verb = doc["ninelivesPeer"]
        bad = lambda msg: error(2, "BadValue", f"ninelivesPeer {verb}: {msg}")
        if verb == "state":
            down = [s.name for s in self.all if s.down]
            down += [m["host"] for m in self.config["members"] if m["host"] not in self.servers]
            return {"ok": 1.0, "config": self.config, "primary": self.primary, "term": Int64(self.term),
                    "down": down,
                    "servers": [{"host": s.name, "member": self.member(s.name) is not None,
                                 "state": self.role(s.name), "down": s.down, "lag": s.lag} for s in self.all]}
        if verb == "setPrimary":
            host = doc.get("host")
            if host is None:
                self.primary = None  # an election in progress
                return {"ok": 1.0}
            m = self.member(host) if isinstance(host, str) else None
            if m is None or m.get("arbiterOnly"):
                return bad(f"{host!r} is not a data member of the config")
            if not self.reachable(host):
                return bad(f"{host} is down")
            if host != self.primary:
                self.primary = host
                self.term += 1
            return {"ok": 1.0}
        if verb == "setDown":
            target = self.servers.get(doc.get("host"))
            down = doc.get("down", True)
            if target is None:
                return bad(f"{doc.get('host')!r} is none of this set's servers")
            if not isinstance(down, bool):
                return bad("down must be a boolean")
            if target.down == down:
                return {"ok": 1.0}
            if down:
                target.down = True
                if self.primary == target.name:
                    self.primary = None  # until the test says who won
            # Stopping or starting a listener waits for its threads, which
            # may be waiting for this lock: release it meanwhile.
            self.lock.release()
            try:
                outcome = self.change_listening(target, not down, 0 if target is server else 5)
            finally:
                self.lock.acquire()
            if outcome and outcome != "pending":
                return error(1, "InternalError", outcome)
            # "pending": still stopping (always so when a server stops itself).
            return {"ok": 1.0, "pending": outcome == "pending"}
        if verb == "fail":
            command, times = doc.get("command"), doc.get("times", 1)
            if not isinstance(command, str) or not is_int(times):
                return bad("needs a command name and an integer times")
            if times <= 0:
                self.failures.pop(command, None)
            else:
                self.failures[command] = [int(times), error(
                    doc.get("code", 8), doc.get("codeName", "UnknownError"),
                    doc.get("errmsg", f"{command} failed (injected by ninelivesPeer fail)"))]
            return {"ok": 1.0}
        if verb == "setStatus":
            target, path = self.servers.get(doc.get("host")), doc.get("path")
            if target is None:
                return bad(f"{doc.get('host')!r} is none of this set's servers")
            if not isinstance(path, str) or not path or "" in path.split("."):
                return bad("path must be a dotted path such as globalLock.currentQueue.total")
            if path in ("ok", "host") or path.startswith("ok."):
                return bad(f"{path} is not a figure")
            if doc.get("unset", False) is not True and "value" not in doc:
                return bad("needs a value (any BSON; a string makes a figure that is not a number) or unset: true")
            # A later setting of the same path (or of a section above it)
            # replaces the earlier one.
            for earlier in [p for p in target.status_overrides if p == path or p.startswith(path + ".")]:
                del target.status_overrides[earlier]
            target.status_overrides[path] = UNSET if doc.get("unset", False) is True else doc["value"]
            return {"ok": 1.0}
        if verb == "clearStatus":
            for target in self.all:
                if doc.get("host") in (None, target.name):
                    target.status_overrides.clear()
            return {"ok": 1.0}
        if verb == "setLag":
            host, seconds = doc.get("host"), doc.get("seconds")
            m = self.member(host) if isinstance(host, str) else None
            if m is None or m.get("arbiterOnly") or host not in self.servers:
                return bad(f"{host!r} is not a data member of the config")
            if not is_number(seconds) or not 0 <= seconds <= 10 ** 9:
                return bad(f"seconds must be a number >= 0, got {seconds!r}")
            self.servers[host].lag = float(seconds)
            return {"ok": 1.0}
        if verb == "log":
            exclude = set(doc.get("exclude") or [])
            return {"ok": 1.0, "log": [e for e in self.log if e["command"] not in exclude]}
        if verb == "clearLog":
            self.log.clear()
            return {"ok": 1.0}
        return bad("unknown verb (state, setPrimary, setDown, fail, setStatus, clearStatus, setLag, log, clearLog)")


def quiet_stopped_servers(args):
    """Thread excepthook: hides mockupdb's noise about sockets it closed itself.

    A stopped MockupDB's accept loop may trip on its closed socket, and a
    client that hangs up mid-reply breaks a connection thread; neither is
    a problem of the set. Everything else is printed as usual.
    """
    tb = args.exc_traceback
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, MockupDB):
            if owner._stopped or issubclass(args.exc_type, ConnectionError):
                return
            break
        tb = tb.tb_next
    threading.__excepthook__(args)


def main():
    parser = argparse.ArgumentParser(description="An emulated MongoDB replica set for tests (see the docstring).")
    parser.add_argument("--spec", required=True, help="the set, as JSON")
    args = parser.parse_args()
    try:
        set_name, members, spares, primary = parse_spec(args.spec)
    except SpecError as e:
        print(f"mongo_peer: bad spec: {e}", file=sys.stderr)
        return 2

    stop = threading.Event()
    signals = []
    # The handler only notes the signal; the main loop below polls it.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, frame: signals.append(number))
    threading.excepthook = quiet_stopped_servers

    rs = ReplicaSet(set_name, members, spares, primary)
    try:
        rs.start()
    except OSError as e:
        print(f"mongo_peer: cannot listen: {e} (is every host a local address?)", file=sys.stderr)
        rs.stop()
        return 2
    print(json.dumps(rs.ready_line()), flush=True)

    def watch_stdin():
        # EOF on stdin means the test process is gone: so are we.
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    while not signals and not stop.wait(0.2):
        pass
    rs.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
