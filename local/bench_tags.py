#!/usr/bin/env python3
"""Measure the tag-lookup extension (b) of local/moto_launcher.py.

Starts two throw-away launchers on free loopback ports, one as usual and one
with --without-tag-index, and runs the same workload against each:
N snapshots (default 10,000) each tagged ninelives-bench=<run> and
bucket=<i % 100>, then times three DescribeSnapshots calls:
  all      no filter (10,000 snapshots, each with its tags)
  tag-all  Filter tag:ninelives-bench=<run> (matches all)
  tag-1%   Filter tag:bucket=7 (matches 1 %)
and then pages through tag-all with MaxResults=1000 (extension c).
The snapshots are created untagged and tagged with CreateTags in batches of
1,000, so that setting up the unpatched server does not take quadratic time
too. Prints a Markdown table. It does not touch the server of
scripts/local-aws.sh.

Usage: "$(scripts/local-aws.sh python)" local/bench_tags.py [--snapshots N] [--only patched|unpatched]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import boto3
import botocore.config

import throwaway

REGION = "ap-southeast-2"


def start_launcher(extra: list[str], logfile: Any) -> tuple[subprocess.Popen[bytes], str]:
    proc, endpoint, info = throwaway.start(extra, logfile, timeout=30)
    if ("index_tag_lookup" in info["extensions"]) != ("--without-tag-index" not in extra):
        proc.kill()
        raise SystemExit(f"unexpected extensions {info['extensions']}")
    return proc, endpoint


def timed(label: str, call: Any) -> tuple[float, Any]:
    started = time.monotonic()
    result = call()
    elapsed = time.monotonic() - started
    print(f"  {label}: {elapsed:.2f} s", file=sys.stderr, flush=True)
    return elapsed, result


def workload(endpoint: str, count: int) -> dict[str, float]:
    config = botocore.config.Config(read_timeout=1800, retries={"max_attempts": 1})
    ec2 = boto3.client(
        "ec2", endpoint_url=endpoint, region_name=REGION, config=config,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    run = uuid.uuid4().hex[:8]
    volume = ec2.create_volume(Size=1, AvailabilityZone=f"{REGION}a")["VolumeId"]
    times: dict[str, float] = {}

    def create() -> list[str]:
        return [ec2.create_snapshot(VolumeId=volume)["SnapshotId"] for _ in range(count)]

    times["create"], ids = timed(f"create {count} snapshots", create)

    def tag() -> None:
        for start in range(0, count, 1000):
            batch = ids[start : start + 1000]
            ec2.create_tags(Resources=batch, Tags=[{"Key": "ninelives-bench", "Value": run}])
            for bucket in range(100):
                members = [s for i, s in enumerate(batch, start) if i % 100 == bucket]
                ec2.create_tags(Resources=members, Tags=[{"Key": "bucket", "Value": str(bucket)}])

    times["tag"], _ = timed("tag them", tag)
    checks = {
        "all": ({}, count),
        "tag-all": ({"Filters": [{"Name": "tag:ninelives-bench", "Values": [run]}]}, count),
        "tag-1%": ({"Filters": [{"Name": "tag:bucket", "Values": ["7"]}]}, count // 100),
    }
    for name, (kwargs, expected) in checks.items():
        times[name], answer = timed(f"DescribeSnapshots {name}", lambda: ec2.describe_snapshots(**kwargs))
        got = len(answer["Snapshots"])
        if got != expected:
            raise SystemExit(f"{name}: {got} snapshots, expected {expected}")

    def paged() -> int:
        pages = ec2.get_paginator("describe_snapshots").paginate(
            PaginationConfig={"PageSize": 1000}, **checks["tag-all"][0]
        )
        return sum(len(page["Snapshots"]) for page in pages)

    times["tag-all paged"], got = timed("DescribeSnapshots tag-all, pages of 1000", paged)
    if got != count:
        raise SystemExit(f"paged: {got} snapshots, expected {count}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshots", type=int, default=10_000)
    parser.add_argument("--only", choices=["patched", "unpatched"])
    args = parser.parse_args()
    variants = {"patched": [], "unpatched": ["--without-tag-index"]}
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryFile() as logfile:
        for name, extra in variants.items():
            if args.only and name != args.only:
                continue
            print(f"{name}:", file=sys.stderr, flush=True)
            proc, endpoint = start_launcher(extra, logfile)
            try:
                results[name] = workload(endpoint, args.snapshots)
            finally:
                proc.terminate()
                proc.wait(timeout=15)
    columns = ["create", "tag", "all", "tag-all", "tag-1%", "tag-all paged"]
    print(f"| moto 5.2.5, {args.snapshots} snapshots | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, times in results.items():
        print(f"| {name} | " + " | ".join(f"{times[c]:.1f} s" for c in columns) + " |")


if __name__ == "__main__":
    main()
