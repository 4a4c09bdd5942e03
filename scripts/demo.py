#!/usr/bin/env python3
"""The ninelives demo, narrated (run by scripts/demo.sh).

Builds a small fleet of tagged EBS volumes in the local AWS, replays the
scheduled events that snapshot-volumes and purge-snapshots receive in an
account (a few weeks of history, then today), and says in plain words what
happened and what was kept. Then an Auto Scaling group of one loses its
instance and lifecycle-hook gives the replacement its data back from the
latest snapshot, and a search node joins and leaves its weighted record.
Then a three-node Redis chain on loopback loses its head: redis-failover
promotes the next node, moves the record, and fences the old head when it
comes back. Last, a MongoDB replica set (played by local/mongo_peer.py, a
wire-protocol peer, as no mongod is installable here) gets a new member
through the task queue, and its record follows an election. Last of all,
publish-metrics reads every node of the chain and the set and the report
shows what CloudWatch received. Every function call is a real
`cargo run -q --bin replay -- FUNCTION EVENT_FILE`, printed as it runs; boto3
is used only to build the fleet and to look at the result.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "events-fixtures"
DB = "db.example.com"
KATE = "kate.example.com"
LEGACY = "reports.example.com"
CACHE = "cache.example.com"
SEARCH = "search.example.com"
CHAIN = "chain.example.com"
# Loopback addresses for the Redis chain (the first three) and the MongoDB
# replica set (all four), and the Redis port. scripts/secrets-check.sh moves
# them to addresses of its own so it can run next to the test suite.
HOSTS = os.environ.get("NINELIVES_DEMO_HOSTS", "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5").split(",")
CHAIN_HOSTS = HOSTS[:3]
REDIS_PORT = os.environ.get("NINELIVES_DEMO_REDIS_PORT", "6379")
# When set, the Redis chain requires this password (requirepass; the
# functions get it by reference, REDIS_PASSWORD_FROM, from the caller's
# environment) and redis-cli sends it (REDISCLI_AUTH, never argv).
REDIS_PASSWORD = os.environ.get("NINELIVES_DEMO_REDIS_PASSWORD", "")
# When set, every replay's stdout and stderr (its JSON logs with RUST_LOG)
# are appended here too: scripts/secrets-check.sh greps them.
REPLAY_LOG = os.environ.get("NINELIVES_DEMO_LOG", "")
# A built replay binary to run instead of `cargo run -q --bin replay --`
# (scripts/secrets-check.sh: no cargo lock wait per call).
REPLAY = os.environ.get("NINELIVES_DEMO_REPLAY", "")
MONGO = "mongo.example.com"
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
HOUR = NOW.replace(minute=0, second=0)

ec2 = boto3.client("ec2")
autoscaling = boto3.client("autoscaling")
route53 = boto3.client("route53")
cloudwatch = boto3.client("cloudwatch")
# The awscli/boto3 SQS client ignores AWS_ENDPOINT_URL on some versions.
sqs = boto3.client("sqs", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
work = Path(tempfile.mkdtemp(prefix="ninelives-demo-"))


def say(text: str = "") -> None:
    print(text, flush=True)


def stamp(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def tags(pairs: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in pairs.items()]


def replay(function: str, event: Path | dict, label: str, **env: str) -> dict:
    """Runs the function on the event through `replay`, returns its result."""
    if isinstance(event, dict):
        path = work / f"{label}.json"
        path.write_text(json.dumps(event, indent=2))
    else:
        path = event
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    prefix = "".join(f"{k}={v} " for k, v in env.items())
    say(f"  $ {prefix}cargo run -q --bin replay -- {function} {shown}")
    command = [REPLAY] if REPLAY else ["cargo", "run", "-q", "--bin", "replay", "--"]
    run = subprocess.run(
        [*command, function, str(path)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    if REPLAY_LOG:
        with open(REPLAY_LOG, "a") as log:
            log.write(f"== replay {function} {shown} (exit {run.returncode})\n{run.stdout}\n{run.stderr}\n")
    if run.returncode != 0:
        say(run.stderr.strip())
        sys.exit(f"demo: {function} failed (exit {run.returncode})")
    return json.loads(run.stdout)


def scheduled(tier: str, time: dt.datetime) -> dict:
    event = json.loads((FIXTURES / "snapshot-volumes" / f"scheduled-{tier}.json").read_text())
    event["time"] = stamp(time)
    return event


def build_fleet() -> dict[str, str]:
    az = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]

    def instance() -> str:
        r = ec2.run_instances(ImageId="ami-12345678", InstanceType="t3.micro", MinCount=1, MaxCount=1)
        return r["Instances"][0]["InstanceId"]

    def volume(size: int, pairs: dict[str, str], on: str | None = None, device: str = "") -> str:
        spec = [{"ResourceType": "volume", "Tags": tags(pairs)}] if pairs else []
        vid = ec2.create_volume(AvailabilityZone=az, Size=size, VolumeType="gp3", TagSpecifications=spec)["VolumeId"]
        if on:
            ec2.attach_volume(VolumeId=vid, InstanceId=on, Device=device)
        return vid

    db1 = instance()
    v = {
        "db/main": volume(100, {"ninelives:cluster": DB, "ninelives:name": "main"}, db1, "/dev/sdf"),
        "db/ts1": volume(50, {"ninelives:cluster": DB, "ninelives:name": "ts1"}, db1, "/dev/sdg"),
        "db/scratch": volume(20, {"ninelives:cluster": DB, "ninelives:name": "scratch", "ninelives:backup": "off"}, db1, "/dev/sdh"),
    }
    for n in (1, 2, 3):
        node = instance()
        v[f"kate/node{n}"] = volume(8, {"ninelives:cluster": KATE, "ninelives:name": "data"}, node, "/dev/sdf")
    reports = instance()
    v["legacy"] = volume(30, {"ninelives:cluster": LEGACY, "ninelives:name": "main"}, reports, "/dev/sdf")
    v["legacy-instance"] = reports
    say(f"  PostgreSQL {DB} on {db1}: tablespaces main ({v['db/main']}) and ts1 ({v['db/ts1']}),")
    say(f"    plus a scratch volume tagged ninelives:backup=off ({v['db/scratch']}) and the root volume (untagged)")
    say(f"  Redis {KATE}: three nodes, one data volume each ({v['kate/node1']}, {v['kate/node2']}, {v['kate/node3']})")
    say(f"  {LEGACY}: an old reporting database ({v['legacy']}), about to be retired")
    hand = ec2.create_snapshot(
        VolumeId=v["db/main"],
        Description="taken by hand before an upgrade",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags({"ninelives:cluster": DB, "ninelives:expires-at": stamp(NOW - dt.timedelta(days=30))})}],
    )["SnapshotId"]
    say(f"  and a snapshot someone took by hand ({hand}): not managed by ninelives, so never purged")
    v["hand"] = hand
    return v


def snapshots() -> list[dict]:
    pages = ec2.get_paginator("describe_snapshots").paginate(OwnerIds=["self"], PaginationConfig={"PageSize": 1000})
    return [s for page in pages for s in page["Snapshots"]]


def tag(snapshot: dict, key: str) -> str | None:
    return next((t["Value"] for t in snapshot.get("Tags", []) if t["Key"] == key), None)


def main() -> None:
    say(f"ninelives demo against the local AWS ({os.environ.get('AWS_ENDPOINT_URL')}, region {os.environ.get('AWS_REGION')})")
    say()
    say("1. A fleet of tagged volumes")
    fleet = build_fleet()
    say()

    say("2. Some history: the schedule ran over the past weeks (replaying those events)")
    history = [
        ("weekly", HOUR - dt.timedelta(days=21)),
        ("daily", HOUR - dt.timedelta(days=20)),
        ("daily", HOUR - dt.timedelta(days=16)),
        ("hourly", HOUR - dt.timedelta(days=9, hours=2)),
        ("hourly", HOUR - dt.timedelta(days=9, hours=1)),
    ]
    for tier, when in history:
        r = replay("snapshot-volumes", scheduled(tier, when), f"{tier}-{when:%Y%m%d%H}")
        say(f"     {tier} run of {when:%Y-%m-%d %H:00}: {len(r['created'])} snapshots, expiring {r['expires_at']}")
    # The reporting database is retired: instance terminated, volume gone.
    ec2.detach_volume(VolumeId=fleet["legacy"], InstanceId=fleet["legacy-instance"], Device="/dev/sdf")
    ec2.delete_volume(VolumeId=fleet["legacy"])
    ec2.terminate_instances(InstanceIds=[fleet["legacy-instance"]])
    say(f"  {LEGACY} was retired: its instance terminated and its volume deleted; only its snapshots remain.")
    r = replay("snapshot-volumes", scheduled("daily", HOUR - dt.timedelta(days=10)), "daily-10-days-ago")
    say(f"     daily run of {HOUR - dt.timedelta(days=10):%Y-%m-%d %H:00}: {len(r['created'])} snapshots, expiring {r['expires_at']}")
    old_kate = next(
        s for s in snapshots() if tag(s, "ninelives:cluster") == KATE and tag(s, "ninelives:tier") == "hourly"
    )
    ami = ec2.register_image(
        Name="kate-golden-image",
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": old_kate["SnapshotId"]}}],
    )["ImageId"]
    say(f"  An AMI ({ami}) was registered from one of kate's old hourly snapshots ({old_kate['SnapshotId']}).")
    say()

    # The history was replayed just now, so its snapshots' start times are
    # "now" too; EC2 start times have whole seconds. A second's pause keeps
    # today's snapshots the newest, as they would be in a real account.
    time.sleep(1.1)
    say("3. Today's daily schedule fires")
    today = scheduled("daily", NOW)
    r = replay("snapshot-volumes", today, "daily-today")
    for c in r["created"]:
        how = "together with its instance's other volumes (CreateSnapshots)" if c["method"] == "CreateSnapshots" else "on its own"
        say(f"     {c['snapshot_id']}: {c['cluster']}/{c['name']} from {c['volume_id']}, {how}")
    for s in r["skipped"]:
        say(f"     skipped {s['volume_id']}: {s['reason']}")
    say(f"   {len(r['created'])} snapshots for {r['tier']} {r['period']}, kept until {r['expires_at']}")
    say()

    say("4. EventBridge delivers the same event again (at-least-once delivery)")
    again = replay("snapshot-volumes", today, "daily-today-again")
    say(f"   nothing new: {len(again['created'])} created, {len(again['already_done'])} volumes already had today's snapshot")
    say()

    say("5. The purge, first as a dry run")
    dry = replay("purge-snapshots", FIXTURES / "purge-snapshots" / "direct-dry-run.json", "purge-dry")
    say(f"   would delete {len(dry['would_delete'])} of {dry['managed']} managed snapshots; nothing deleted yet")
    say()

    say("6. The scheduled purge")
    p = replay("purge-snapshots", FIXTURES / "purge-snapshots" / "scheduled.json", "purge", PURGE_DELETES_PER_SECOND="0")
    say(f"   deleted {len(p['deleted'])} expired snapshots")
    for k in p["kept_newest"]:
        say(f"   kept {k['snapshot_id']} ({k['cluster']}/{k['name']}) although expired: the newest of its volume")
    for k in p["in_use"]:
        say(f"   kept {k['snapshot_id']}: {k['reason']}")
    say(f"   {p['not_expired']} snapshots have not expired; {len(p['invalid'])} could not be judged")
    left = {s["SnapshotId"] for s in snapshots()}
    say(f"   the hand-made snapshot {fleet['hand']} is {'still there' if fleet['hand'] in left else 'GONE (bug!)'}")
    say()

    say("7. What is kept now, per cluster and volume")
    groups: dict[str, list[dict]] = defaultdict(list)
    for s in snapshots():
        if tag(s, "ninelives:managed-by") == "ninelives":
            groups[f"{tag(s, 'ninelives:cluster')}/{tag(s, 'ninelives:name')}"].append(s)
    for key in sorted(groups):
        items = sorted(groups[key], key=lambda s: tag(s, "ninelives:expires-at") or "")
        tiers = ", ".join(f"{tag(s, 'ninelives:tier')} until {tag(s, 'ninelives:expires-at')[:10]}" for s in items)
        say(f"   {key}: {len(items)} snapshots ({tiers})")
    say()
    restore_on_replacement()
    say()
    zone_id = search_records()
    say()
    redis_chain(zone_id)
    say()
    control = mongo_set(zone_id)
    say()
    metrics_report(control)
    say()
    say("Replay any fixture yourself: eval \"$(scripts/local-aws.sh env)\" and then")
    say("  cargo run -q --bin replay -- snapshot-volumes events-fixtures/snapshot-volumes/scheduled-weekly.json")


def group_of_one(name: str, pairs: dict[str, str]) -> str:
    """An Auto Scaling group of one with launch and terminate hooks."""
    az = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    ec2.create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": "ami-12345678", "InstanceType": "t3.micro"}
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": name},
        MinSize=1,
        MaxSize=1,
        DesiredCapacity=1,
        AvailabilityZones=[az],
        Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True, "ResourceId": name, "ResourceType": "auto-scaling-group"}
              for k, v in pairs.items()],
    )
    for hook, transition in (("ninelives-launch", "LAUNCHING"), ("ninelives-terminate", "TERMINATING")):
        autoscaling.put_lifecycle_hook(
            AutoScalingGroupName=name, LifecycleHookName=hook, HeartbeatTimeout=300,
            LifecycleTransition=f"autoscaling:EC2_INSTANCE_{transition}", DefaultResult="ABANDON",
        )
    return group_instances(name)[0]


def group_instances(name: str) -> list[str]:
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return [i["InstanceId"] for g in groups for i in g["Instances"]]


def lifecycle_event(transition: str, group: str, instance: str, n: int) -> dict:
    """The event EventBridge delivers for a lifecycle action (the local AWS
    runs no hooks itself, so the demo sends what AWS would)."""
    event = json.loads((FIXTURES / "lifecycle-hook" / f"eventbridge-{transition}.json").read_text())
    event["time"] = stamp(dt.datetime.now(dt.timezone.utc))
    event["region"] = os.environ.get("AWS_REGION", "us-east-1")
    event["detail"].update({
        "AutoScalingGroupName": group,
        "LifecycleHookName": f"ninelives-{transition}",
        "EC2InstanceId": instance,
        "LifecycleActionToken": f"00000000-0000-4000-8000-{n:012d}",
    })
    return event


def recorded_actions(group: str) -> list[dict]:
    url = f"{os.environ['AWS_ENDPOINT_URL'].rstrip('/')}/_ninelives/lifecycle-actions?group={group}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def restore_on_replacement() -> None:
    say(f"8. {CACHE}: an Auto Scaling group of one, with lifecycle hooks")
    first = group_of_one("cache", {"ninelives:cluster": CACHE, "ninelives:size": "8"})
    say(f"   Auto Scaling launched {first}; the launch hook's event reaches lifecycle-hook:")
    r = replay("lifecycle-hook", lifecycle_event("launch", "cache", first, 1), "cache-launch-1")
    say(f"     {r['volume']['outcome']}: {r['volume']['volume_id']} ({r['volume']['size_gib']} GiB) at "
        f"{r['volume']['device']}, no backup of {CACHE} existed yet; lifecycle action: {r['result']}")
    time.sleep(1.1)  # a snapshot newer than today's daily ones
    h = replay("snapshot-volumes", scheduled("hourly", NOW), "hourly-now")
    mine = [c for c in h["created"] if c["cluster"] == CACHE]
    say(f"   The hourly schedule backs it up: {mine[0]['snapshot_id']}")
    say(f"   {first} fails its health check; Auto Scaling terminates it and launches a replacement.")
    autoscaling.terminate_instance_in_auto_scaling_group(InstanceId=first, ShouldDecrementDesiredCapacity=False)
    second = next(i for i in group_instances("cache") if i != first)
    launch = lifecycle_event("launch", "cache", second, 2)
    r = replay("lifecycle-hook", launch, "cache-launch-2")
    v = r["volume"]
    say(f"     {second} got {v['volume_id']}, {v['outcome']} from {v['snapshot_id']} in {v['availability_zone']}, "
        f"attached at {v['device']}, delete-on-termination {v['delete_on_termination']}; lifecycle action: {r['result']}")
    volume = ec2.describe_volumes(VolumeIds=[v["volume_id"]])["Volumes"][0]
    say(f"     EC2 says: {volume['VolumeId']} from {volume['SnapshotId']}, {volume['State']}, "
        f"attached to {volume['Attachments'][0]['InstanceId']} at {volume['Attachments'][0]['Device']}")
    again = replay("lifecycle-hook", launch, "cache-launch-2-again")
    say(f"   The same event delivered again: action {again['status']}, "
        f"{'no volume touched' if 'volume' not in again else again['volume']['outcome']}: "
        "no second volume, no second completion")
    for a in recorded_actions("cache"):
        what = " ".join(x for x in (a["action"], a["result"]) if x)
        say(f"     Auto Scaling heard: {what} for {a['instance_id']}")


def search_records() -> str:
    say(f"9. {SEARCH}: search nodes find each other through a weighted record")
    zone = route53.create_hosted_zone(Name="example.com", CallerReference=f"demo-{NOW:%s}")["HostedZone"]["Id"]
    zone_id = zone.split("/")[-1]
    node = group_of_one("search", {"ninelives:cluster": SEARCH, "ninelives:role": "search"})
    r = replay("lifecycle-hook", lifecycle_event("launch", "search", node, 3), "search-launch", HOSTED_ZONE_ID=zone_id)
    rec = r["role"]["detail"]
    say(f"   {node} joined: {rec['name']} {rec['type']} {rec['values'][0]} (weight {rec['weight']}, "
        f"set identifier {rec['set_identifier']}); lifecycle action: {r['result']}")
    r = replay("lifecycle-hook", lifecycle_event("terminate", "search", node, 4), "search-terminate",
               HOSTED_ZONE_ID=zone_id)
    left = [x for x in route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
            if x.get("SetIdentifier") == node]
    say(f"   {node} is terminated: its record was {r['role']['action']} ({len(left)} left); "
        f"lifecycle action: {r['result']}")
    return zone_id


servers: dict[str, subprocess.Popen] = {}


def redis_server(host: str) -> None:
    """A real redis-server on host:REDIS_PORT, stopped when the demo ends."""
    folder = work / f"redis-{host}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    config = folder / "redis.conf"
    lines = [f"bind {host}", f"port {REDIS_PORT}", 'save ""', "appendonly no", "daemonize no",
             f"dir {folder}", f"logfile {folder / 'redis.log'}"]
    if REDIS_PASSWORD:
        # In the config file, not argv (which ps shows); replicas log in with
        # the same password (masterauth).
        lines += [f'requirepass "{REDIS_PASSWORD}"', f'masterauth "{REDIS_PASSWORD}"']
    config.write_text("\n".join(lines) + "\n")
    servers[host] = subprocess.Popen(["redis-server", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if cli(host, "PING", check=False) == "PONG":
            return
        time.sleep(0.1)
    sys.exit(f"demo: redis-server on {host}:{REDIS_PORT} did not start (is the port taken?)")


def kill_server(host: str) -> None:
    server = servers.pop(host)
    server.send_signal(signal.SIGKILL)
    server.wait()


@atexit.register
def stop_servers() -> None:
    for host in list(servers):
        kill_server(host)


def cli(host: str, *args: str, check: bool = True) -> str:
    env = {**os.environ, "REDISCLI_AUTH": REDIS_PASSWORD} if REDIS_PASSWORD else None
    run = subprocess.run(["redis-cli", "-h", host, "-p", REDIS_PORT, *args], capture_output=True, text=True,
                         timeout=10, env=env)
    if check and run.returncode != 0:
        sys.exit(f"demo: redis-cli {' '.join(args)} on {host}: {run.stderr.strip()}")
    return run.stdout.strip()


def role(host: str) -> str:
    info = dict(line.split(":", 1) for line in cli(host, "INFO", "replication").splitlines() if ":" in line)
    if info.get("role") == "master":
        return "head (master)"
    return f"replica of {info.get('master_host')}, link {info.get('master_link_status')}"


def record(zone_id: str, name: str) -> str:
    sets = route53.list_resource_record_sets(HostedZoneId=zone_id, StartRecordName=name)["ResourceRecordSets"]
    found = [r for r in sets if r["Name"].rstrip(".") == name]
    return found[0]["ResourceRecords"][0]["Value"] if found else "(none)"


def redis_chain(zone_id: str) -> None:
    say(f"10. {CHAIN}: a Redis chain of three real redis-server processes, head first")
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        say("   skipped: redis-server and redis-cli are not installed (apt-get install redis-server)")
        return
    ids = []
    for host in CHAIN_HOSTS:
        redis_server(host)
        instance = ec2.run_instances(ImageId="ami-12345678", InstanceType="t3.micro", MinCount=1, MaxCount=1,
                                     TagSpecifications=[{"ResourceType": "instance", "Tags": tags({
                                         "ninelives:role": "redis", "ninelives:cluster": CHAIN,
                                         "ninelives:endpoint": f"{host}:{REDIS_PORT}"})}])["Instances"][0]["InstanceId"]
        ids.append(instance)
    for replica, master in zip(CHAIN_HOSTS[1:], CHAIN_HOSTS):
        cli(replica, "REPLICAOF", master, REDIS_PORT)
    for host in CHAIN_HOSTS[1:]:
        for _ in range(100):
            if "link up" in role(host):
                break
            time.sleep(0.1)
    for host, instance in zip(CHAIN_HOSTS, ids):
        say(f"   {instance} at {host}:{REDIS_PORT}: {role(host)}")
    env = {"HOSTED_ZONE_ID": zone_id}
    r = replay("redis-failover", {"cluster": CHAIN}, "chain-check", **env)
    c = r["clusters"][0]
    say(f"   The first check finds the chain {' -> '.join(c['chain'])} and writes its records: "
        + ", ".join(f"{x['name']} -> {x['to']} ({x['action']})" for x in c["records"]))
    head = record(zone_id, CHAIN)
    for i in range(100):
        cli(head, "SET", f"order:{i}", f"paid-{i}")
    acked = cli(head, "WAIT", "1", "2000")
    say(f"   100 writes through {CHAIN} (-> {head}), acknowledged by {acked} replica (WAIT 1)")
    say(f"   The head at {head} dies (SIGKILL). Its NodeUp alarm reaches redis-failover through EventBridge:")
    kill_server(head)
    alarm = (FIXTURES / "redis-failover" / "alarm-eventbridge.json").read_text().replace("kate.example.com", CHAIN)
    event = json.loads(alarm)
    event["time"] = stamp(dt.datetime.now(dt.timezone.utc))
    started = time.monotonic()
    r = replay("redis-failover", event, "chain-alarm", **env)
    c = r["clusters"][0]
    new_head = record(zone_id, CHAIN)
    cli(new_head, "SET", "after-failover", "yes")
    took = time.monotonic() - started
    say(f"     {c['status']}: {c['promoted']} is the head, {CHAIN} -> {new_head}, tail.{CHAIN} -> "
        f"{record(zone_id, 'tail.' + CHAIN)}; chain {' -> '.join(c['chain'])}")
    kept = sum(1 for i in range(100) if cli(new_head, "GET", f"order:{i}") == f"paid-{i}")
    say(f"     writes continue through the record: {kept} of 100 acknowledged writes are there, and a new one "
        f"was accepted {took:.1f} s after the alarm reached the function (Redis Sentinel's default takes 30 s "
        "only to notice)")
    for host in CHAIN_HOSTS[1:]:
        say(f"     {host}: {role(host)}")
    say(f"   {head} comes back, empty, thinking it is a head. The next scheduled check:")
    redis_server(head)
    schedule = json.loads((FIXTURES / "redis-failover" / "schedule.json").read_text())
    r = replay("redis-failover", schedule, "chain-schedule", **env)
    c = next(x for x in r["clusters"] if x["cluster"] == CHAIN)
    for step in c.get("steps", []):
        say(f"     {step['step']} {step['instance_id']} -> replica of {step.get('master', '-')} ({step.get('reason')}): "
            f"{step['result']}")
    for _ in range(100):
        if "link up" in role(head):
            break
        time.sleep(0.1)
    say(f"     {head}: {role(head)}; it now holds after-failover={cli(head, 'GET', 'after-failover')!r}; "
        f"{CHAIN} -> {record(zone_id, CHAIN)}, tail -> {record(zone_id, 'tail.' + CHAIN)}")


def peer_command(control: str, **command: object) -> dict:
    """A control command to the replica-set peer (who is primary, its config)."""
    import pymongo

    host, port = control.rsplit(":", 1)
    with pymongo.MongoClient(host, int(port), directConnection=True, serverSelectionTimeoutMS=3000) as client:
        return client.admin.command({"ninelivesPeer": command.pop("verb"), **command})


def sqs_event(queue_url: str) -> tuple[dict, list[dict]]:
    """What Lambda's event source mapping hands replset-tasks: the queue's next batch."""
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                   MessageSystemAttributeNames=["All"]).get("Messages", [])
    records = [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs", "eventSourceARN": f"arn:aws:sqs:{os.environ.get('AWS_REGION', 'us-east-1')}:"
                                                     f"123456789012:{queue_url.rsplit('/', 1)[-1]}",
        "awsRegion": os.environ.get("AWS_REGION", "us-east-1"),
    } for m in messages]
    return {"Records": records}, messages


def mongo_set(zone_id: str) -> None:
    say(f"11. {MONGO}: a MongoDB replica set (two data members and an arbiter) and its task queue")
    spec = {"set": MONGO, "members": [{"host": HOSTS[0]}, {"host": HOSTS[1]}, {"host": HOSTS[2], "arbiter": True}],
            "spares": [{"host": HOSTS[3]}]}
    peer = subprocess.Popen([sys.executable, str(ROOT / "local" / "mongo_peer.py"), "--spec", json.dumps(spec)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    atexit.register(peer.kill)
    ready = json.loads(peer.stdout.readline())
    members, spare, control = ready["members"], ready["spares"][0], ready["control"]
    say("   (played by local/mongo_peer.py, a MongoDB wire-protocol peer: no mongod is installable here)")
    for i, host in enumerate(members):
        ec2.run_instances(ImageId="ami-12345678", InstanceType="t3.micro", MinCount=1, MaxCount=1,
                          TagSpecifications=[{"ResourceType": "instance", "Tags": tags({
                              "ninelives:role": "mongodb-arbiter" if i == 2 else "mongodb",
                              "ninelives:cluster": MONGO, "ninelives:endpoint": host})}])
    env = {"HOSTED_ZONE_ID": zone_id}
    r = replay("mongo-endpoint", {"cluster": MONGO}, "mongo-check", **env)
    s = r["sets"][0]
    say(f"   mongo-endpoint asks each member `hello`: primary {s['primary']} ({s['primary_instance']}); "
        f"{MONGO} -> {record(zone_id, MONGO)} ({s['status']})")
    dlq = sqs.create_queue(QueueName="replset-tasks-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(QueueName="replset-tasks.fifo", Attributes={
        "FifoQueue": "true", "VisibilityTimeout": "0",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})})["QueueUrl"]
    instance = group_of_one("mongo", {"ninelives:cluster": MONGO, "ninelives:role": "mongodb",
                                      "ninelives:endpoint": spare, "ninelives:restore": "none", "ninelives:size": "4"})
    say(f"   Auto Scaling launches {instance} (mongod at {spare}); the launch hook's event reaches lifecycle-hook:")
    r = replay("lifecycle-hook", lifecycle_event("launch", "mongo", instance, 11), "mongo-launch", TASK_QUEUE_URL=queue)
    task = r["role"]["detail"]["tasks"][0]
    say(f"     {r['role']['action']} `{task['type']} {task['host']}` on the FIFO queue (group {MONGO}, "
        f"deduplication id {task['deduplication_id']}); lifecycle action: {r['result']}")
    event, messages = sqs_event(queue)
    r = replay("replset-tasks", event, "mongo-tasks")
    failed = {f["itemIdentifier"] for f in r["batchItemFailures"]}
    for m in messages:
        if m["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    config = peer_command(control, verb="state")["config"]
    added = next(m for m in config["members"] if m["host"] == spare)
    say(f"   replset-tasks applies it on the primary with replSetReconfig: config version {config['version']}, "
        f"{spare} is member _id {added['_id']} (votes {added['votes']}, priority {added['priority']}); "
        f"{len(failed)} task(s) left on the queue")
    say(f"   An election: {members[1]} becomes primary. The set's alarm reaches mongo-endpoint through EventBridge:")
    peer_command(control, verb="setPrimary", host=members[1])
    alarm = json.loads((FIXTURES / "mongo-endpoint" / "alarm-eventbridge.json").read_text().replace("kate.example.com", MONGO))
    r = replay("mongo-endpoint", alarm, "mongo-alarm", **env)
    s = r["sets"][0]
    say(f"     {s['status']}: {MONGO} -> {record(zone_id, MONGO)} (was {s['record']['from']})")
    r = replay("mongo-endpoint", {"cluster": MONGO}, "mongo-again", **env)
    say(f"   The next minute's check finds it {r['sets'][0]['status']}: no change, no Route 53 write.")
    return control


def statistic(namespace: str, name: str, at: dt.datetime, **dims: str) -> str:
    """The value CloudWatch holds for one metric at the run's minute."""
    points = cloudwatch.get_metric_statistics(
        Namespace=namespace, MetricName=name, Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=at - dt.timedelta(minutes=2), EndTime=at + dt.timedelta(minutes=2), Period=60,
        Statistics=["Maximum"])["Datapoints"]
    if not points:
        return "(none)"
    value = points[0]["Maximum"]
    return f"{value:,.0f}" if value >= 1000 else f"{value:g}"


def metrics_report(control: str) -> None:
    say("12. publish-metrics: every tagged node, read from outside, in as few PutMetricData calls as possible")
    members = peer_command(control, verb="state")
    secondary = next(m["host"] for m in members["config"]["members"]
                     if not m.get("arbiterOnly") and m["host"] != members.get("primary"))
    peer_command(control, verb="setDown", host=secondary, down=True)
    say(f"   (the MongoDB member {secondary} is made to stop answering first)")
    r = replay("publish-metrics", FIXTURES / "publish-metrics" / "scheduled.json", "metrics", NODE_TIMEOUT_MS="3000")
    at = dt.datetime.fromisoformat(r["timestamp"])
    nodes = ", ".join(f"{n} {role}" for role, n in r["nodes"].items())
    datums = ", ".join(f"{n} to {ns}" for ns, n in r["datums"].items())
    say(f"   read {nodes}; sent {datums} in {r['calls']} PutMetricData calls")
    for d in r["down"]:
        say(f"   NodeUp 0 for {d['node']} ({d['role']} at {d['endpoint']}): {d['reason']}")
    for s in r["skipped"]:
        say(f"   skipped for {s['cluster']}{' ' + s['node'] if s.get('node') else ''}: {s['reason']}")
    say("   What CloudWatch now holds (GetMetricStatistics, Maximum over the run's minute):")
    say(f"     NineLives/Redis {CHAIN}: HeadUp {statistic('NineLives/Redis', 'HeadUp', at, cluster=CHAIN)}, "
        f"Masters {statistic('NineLives/Redis', 'Masters', at, cluster=CHAIN)}")
    for reservation in ec2.describe_instances(Filters=[
            {"Name": "tag:ninelives:cluster", "Values": [CHAIN]},
            {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]:
        for i in reservation["Instances"]:
            node = i["InstanceId"]
            endpoint = next(t["Value"] for t in i["Tags"] if t["Key"] == "ninelives:endpoint")
            say(f"       {node} ({endpoint}): NodeUp {statistic('NineLives/Redis', 'NodeUp', at, cluster=CHAIN, node=node)}, "
                f"IsMaster {statistic('NineLives/Redis', 'IsMaster', at, cluster=CHAIN, node=node)}, "
                f"UsedMemory {statistic('NineLives/Redis', 'UsedMemory', at, cluster=CHAIN, node=node)} bytes, "
                f"ReplicationLagBytes {statistic('NineLives/Redis', 'ReplicationLagBytes', at, cluster=CHAIN, node=node)}")
    counts = ", ".join(f"{name} {statistic('NineLives/MongoDB', name, at, cluster=MONGO)}" for name in
                       ["HealthyHostCount", "UnHealthyHostCount", "ArbiterCount", "UnHealthyArbiterCount"])
    say(f"     NineLives/MongoDB {MONGO}: {counts}")
    say("   UnHealthyHostCount >= 1 is the alarm that invokes mongo-endpoint, and HeadUp < 1 the one that")
    say("   invokes redis-failover (infra/alarms.yaml, periods explained in infra/README.md)")


if __name__ == "__main__":
    main()
