#!/usr/bin/env python3
"""The ninelives backup demo, narrated (run by scripts/demo.sh).

Builds a small fleet of tagged EBS volumes in the local AWS, replays the
scheduled events that snapshot-volumes and purge-snapshots receive in an
account (a few weeks of history, then today), and says in plain words what
happened and what was kept. Every function call is a real
`cargo run -q --bin replay -- FUNCTION EVENT_FILE`, printed as it runs; boto3
is used only to build the fleet and to look at the result.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "events-fixtures"
DB = "db.example.com"
KATE = "kate.example.com"
LEGACY = "reports.example.com"
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
HOUR = NOW.replace(minute=0, second=0)

ec2 = boto3.client("ec2")
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
    run = subprocess.run(
        ["cargo", "run", "-q", "--bin", "replay", "--", function, str(path)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
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
    say("Replay any fixture yourself: eval \"$(scripts/local-aws.sh env)\" and then")
    say("  cargo run -q --bin replay -- snapshot-volumes events-fixtures/snapshot-volumes/scheduled-weekly.json")


if __name__ == "__main__":
    main()
