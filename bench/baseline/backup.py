"""BASELINE, NOT NINELIVES: the two backup jobs the straightforward way.

This is what a Python user would write from the book's backup.py with boto3
(the book used boto 2 and a shell loop): describe, then create or delete one
call at a time. It exists only so the benchmarks can compare ninelives with it
against the same local AWS in the same run (bench/README.md). It has none of
ninelives' safety: no idempotency (a second delivery snapshots again), no
crash-consistent sets, no keeping of each volume's newest snapshot, no AMI
check, no deadline, no pacing.

Handlers, as a Lambda function would expose them:
  backup.snapshot(event, context)  snapshot every volume tagged ninelives:cluster
  backup.purge(event, context)     delete managed snapshots whose expiry has passed
"""

from __future__ import annotations

import datetime
import os

import boto3

# Created once per process, at import, as AWS recommends for Lambda.
ec2 = boto3.client("ec2", region_name=os.environ.get("AWS_REGION"))

RETENTION_DAYS = {"hourly": 7, "daily": 14, "weekly": 61, "monthly": 365}


def snapshot(event, context):
    tier = event.get("tier", "daily")
    now = datetime.datetime.now(datetime.timezone.utc)
    expires = (now + datetime.timedelta(days=RETENTION_DAYS[tier])).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = []
    for page in ec2.get_paginator("describe_volumes").paginate(
        Filters=[{"Name": "tag-key", "Values": ["ninelives:cluster"]}]
    ):
        for volume in page["Volumes"]:
            tags = {t["Key"]: t["Value"] for t in volume.get("Tags", [])}
            cluster = tags["ninelives:cluster"]
            name = tags.get("ninelives:name", "main")
            snap = ec2.create_snapshot(
                VolumeId=volume["VolumeId"],
                Description=f"Backup of {volume['VolumeId']} - for {cluster}/{name} - expires {expires}",
                TagSpecifications=[
                    {
                        "ResourceType": "snapshot",
                        "Tags": [
                            {"Key": "ninelives:cluster", "Value": cluster},
                            {"Key": "ninelives:name", "Value": name},
                            {"Key": "ninelives:tier", "Value": tier},
                            {"Key": "ninelives:volume-id", "Value": volume["VolumeId"]},
                            {"Key": "ninelives:expires-at", "Value": expires},
                            {"Key": "ninelives:managed-by", "Value": "ninelives"},
                        ],
                    }
                ],
            )
            created.append(snap["SnapshotId"])
    return {"created": len(created)}


def purge(event, context):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    expired = []
    for page in ec2.get_paginator("describe_snapshots").paginate(
        OwnerIds=["self"],
        Filters=[{"Name": "tag:ninelives:managed-by", "Values": ["ninelives"]}],
    ):
        for snap in page["Snapshots"]:
            tags = {t["Key"]: t["Value"] for t in snap.get("Tags", [])}
            expires = tags.get("ninelives:expires-at")
            if expires and expires < now:
                expired.append(snap["SnapshotId"])
    deleted = 0
    for snapshot_id in expired:
        ec2.delete_snapshot(SnapshotId=snapshot_id)
        deleted += 1
    return {"deleted": deleted}
