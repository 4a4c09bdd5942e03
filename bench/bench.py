#!/usr/bin/env python3
"""The ninelives benchmarks: cold start, size, memory, purge and snapshot at
scale, and failover, against the Python/boto3 baseline in the same run.

Run through bench/run.sh, which builds what this needs; see bench/README.md.
Everything runs against a local AWS of its own (local/moto_launcher.py with
--bench, on a free loopback port, reset between scale runs), never the
developer's or the tests' server. Results: a Markdown table on stdout and in
bench/results/RESULTS.md, every sample in bench/results/results.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import zipfile
from typing import Any, Callable

import boto3
import botocore.config

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, os.path.join(ROOT, "local")]

import runtime_api  # noqa: E402 - after the path tweak
import throwaway  # noqa: E402 - after the path tweak

REGION = "eu-west-1"
FUNCTIONS = [
    "snapshot-volumes",
    "purge-snapshots",
    "lifecycle-hook",
    "redis-failover",
    "mongo-endpoint",
    "replset-tasks",
    "publish-metrics",
]
# Each function's cold start runs on this fixture (events-fixtures/), in an
# empty region: it times starting up and the first calls, not work at scale.
COLD_FIXTURES = {
    "snapshot-volumes": "scheduled-daily.json",
    "purge-snapshots": "scheduled.json",
    "lifecycle-hook": "eventbridge-launch.json",
    "redis-failover": "schedule.json",
    "mongo-endpoint": "scheduled.json",
    "replset-tasks": "sqs-terminate.json",
    "publish-metrics": "scheduled.json",
}
# The baseline's counterparts.
BASELINE = {"snapshot-volumes": "backup.snapshot", "purge-snapshots": "backup.purge"}
API_VERSIONS = {"ec2": "2016-11-15", "autoscaling": "2011-01-01", "monitoring": "2010-08-01", "sns": "2010-03-31"}
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def mib(kib: float | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.1f} MiB"


# --- the local AWS ---------------------------------------------------------


class LocalAws:
    """A throw-away launcher of our own (local/throwaway.py), counting calls."""

    def __init__(self, log_path: str) -> None:
        self.log = open(log_path, "wb")
        self.process, self.url, info = throwaway.start(["--bench"], self.log)
        self.moto = info.get("moto", "?")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def request(self, method: str, path: str) -> None:
        urllib.request.urlopen(urllib.request.Request(self.url + path, method=method), timeout=60).read()

    def reset(self) -> None:
        """Forgets every resource (moto's reset) and the call counts."""
        self.request("POST", "/moto-api/reset")
        self.request("DELETE", "/_ninelives/calls")

    def set_latency(self, latency_ms: float) -> None:
        self.request("PUT", f"/_ninelives/latency?ms={latency_ms}")

    def reset_calls(self) -> None:
        self.request("DELETE", "/_ninelives/calls")

    def calls(self, times: bool = False) -> dict[str, Any]:
        return self.get("/_ninelives/calls" + ("?times=1" if times else ""))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def aws_env(aws: LocalAws) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "SSL_CERT_FILE")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        {
            "AWS_ENDPOINT_URL": aws.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    return env


def ec2_client(aws: LocalAws) -> Any:
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=aws.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=botocore.config.Config(max_pool_connections=32, retries={"max_attempts": 10, "mode": "standard"}),
    )


def parallel(work: Callable[[Any], Any], items: list[Any], threads: int = 8) -> list[Any]:
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(work, items))


# --- scenarios -------------------------------------------------------------


def seed_purge(aws: LocalAws, expired: int, kept: int, groups: int) -> set[str]:
    """`expired` managed snapshots past their expiry and `kept` ones not, over
    `groups` (cluster, name) pairs; the kept ones are created last, so each
    pair's newest snapshot is a kept one and both tools must delete exactly
    the expired ones (`kept` >= `groups`). Returns the kept ids."""
    ec2 = ec2_client(aws)
    volumes = [
        ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"] for _ in range(groups)
    ]
    now = datetime.datetime.now(datetime.timezone.utc)

    def make(spec: tuple[int, bool]) -> str:
        index, keep = spec
        group = index % groups
        expires = now + datetime.timedelta(days=3) if keep else now - datetime.timedelta(days=1, seconds=index)
        tags = {
            "ninelives:managed-by": "ninelives",
            "ninelives:cluster": f"c{group % 20}.bench.test",
            "ninelives:name": f"n{group}",
            "ninelives:tier": "daily",
            "ninelives:volume-id": volumes[group],
            "ninelives:expires-at": expires.strftime(TIME_FORMAT),
            "ninelives:period": "2026-11-01",
            "ninelives:set": uuid.uuid4().hex,
            "ninelives:set-size": "1",
        }
        return ec2.create_snapshot(
            VolumeId=volumes[group],
            TagSpecifications=[
                {"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
            ],
        )["SnapshotId"]

    parallel(make, [(i, False) for i in range(expired)])
    # EC2 start times have one-second resolution: make the kept ones newer.
    time.sleep(1.1)
    return set(parallel(make, [(i, True) for i in range(kept)]))


def managed_snapshots(aws: LocalAws) -> set[str]:
    ec2 = ec2_client(aws)
    found: set[str] = set()
    for page in ec2.get_paginator("describe_snapshots").paginate(
        OwnerIds=["self"],
        Filters=[{"Name": "tag:ninelives:managed-by", "Values": ["ninelives"]}],
        PaginationConfig={"PageSize": 1000},
    ):
        found.update(s["SnapshotId"] for s in page["Snapshots"])
    return found


def seed_snapshot(aws: LocalAws, instances: int, per_instance: int, clusters: int) -> set[str]:
    """`instances` instances, each with `per_instance` data volumes tagged
    for one of `clusters` clusters. Returns the volume ids."""
    ec2 = ec2_client(aws)
    ids = [
        i["InstanceId"]
        for i in ec2.run_instances(
            ImageId="ami-12345678",
            MinCount=instances,
            MaxCount=instances,
            InstanceType="t3.micro",
            Placement={"AvailabilityZone": f"{REGION}a"},
        )["Instances"]
    ]

    def attach(spec: tuple[int, int]) -> str:
        index, slot = spec
        cluster = f"c{index % clusters}.bench.test"
        volume = ec2.create_volume(
            AvailabilityZone=f"{REGION}a",
            Size=10,
            TagSpecifications=[
                {
                    "ResourceType": "volume",
                    "Tags": [
                        {"Key": "ninelives:cluster", "Value": cluster},
                        {"Key": "ninelives:name", "Value": f"disk{slot}"},
                    ],
                }
            ],
        )["VolumeId"]
        ec2.attach_volume(VolumeId=volume, InstanceId=ids[index], Device=f"/dev/sd{'fghijklmnop'[slot]}")
        return volume

    return set(parallel(attach, [(i, s) for i in range(instances) for s in range(per_instance)]))


def snapshots_by_volume(aws: LocalAws) -> dict[str, int]:
    counts: dict[str, int] = {}
    for page in ec2_client(aws).get_paginator("describe_snapshots").paginate(
        OwnerIds=["self"], PaginationConfig={"PageSize": 1000}
    ):
        for snap in page["Snapshots"]:
            counts[snap["VolumeId"]] = counts.get(snap["VolumeId"], 0) + 1
    return counts


# --- contestants -----------------------------------------------------------


class Runner:
    def __init__(self, args: argparse.Namespace, aws: LocalAws, logs: str) -> None:
        self.args = args
        self.aws = aws
        self.logs = logs
        self.python = args.python
        self.count = 0

    def ours(self, function: str) -> list[str]:
        return [os.path.join(self.args.target, function)]

    def baseline(self, handler: str) -> list[str]:
        return [self.python, os.path.join(HERE, "baseline", "bootstrap.py"), handler]

    def floor(self) -> list[str]:
        return [os.path.join(self.args.target, "bench-floor")]

    def invoke(self, name: str, argv: list[str], event: bytes, env: dict[str, str], timeout: float = 900) -> runtime_api.Outcome:
        self.count += 1
        log = os.path.join(self.logs, f"{self.count:04d}-{name}.log")
        return runtime_api.invoke(argv, env, event, function_name=name, timeout=timeout, stderr_path=log)


def fixture(function: str, name: str) -> bytes:
    with open(os.path.join(ROOT, "events-fixtures", function, name), "rb") as f:
        return f.read()


def first_request(calls: dict[str, Any]) -> str | None:
    """The first AWS operation of a run, as the floor's FLOOR_REQUEST; None
    when it is not a Query-protocol call (the floor speaks only that)."""
    firsts = [(times[0], key) for key, times in calls.get("times", {}).items() if times]
    if not firsts:
        return None
    service, action = min(firsts)[1].split(":", 1)
    if service not in API_VERSIONS:
        return None
    return f"{service} POST /\n\nAction={action}&Version={API_VERSIONS[service]}"


def function_env(aws: LocalAws, zone_id: str) -> dict[str, str]:
    env = aws_env(aws)
    env.update({"HOSTED_ZONE_ID": zone_id, "RUST_LOG": "warn", "REDIS_PASSWORD": "", "NODE_TIMEOUT_MS": "2000"})
    return env


def cold_start(args: argparse.Namespace, run: Runner, zone_id: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    env = function_env(run.aws, zone_id)
    for function in args.functions:
        event = fixture(function, COLD_FIXTURES[function])
        warm = run.invoke(function, run.ours(function), event, env)  # warms moto's code paths, not ours
        samples, rss, kinds = [], [], set()
        for i in range(args.runs):
            if i == 0:
                run.aws.reset_calls()
            outcome = run.invoke(function, run.ours(function), event, env)
            if i == 0:
                calls = run.aws.calls(times=True)
            samples.append(outcome.elapsed)
            rss.append(outcome.peak_rss_kib)
            kinds.add(outcome.kind)
        request = first_request(calls)
        floor_samples: list[float] = []
        if request:
            floor_env = dict(env, FLOOR_REQUEST=request)
            for _ in range(args.runs):
                outcome = run.invoke("floor", run.floor(), event, floor_env)
                if outcome.kind != "response":
                    raise SystemExit(f"bench: the floor failed: {outcome.kind} {outcome.body!r} {outcome.stderr}")
                floor_samples.append(outcome.elapsed)
        entry: dict[str, Any] = {
            "runs": args.runs,
            "fixture": COLD_FIXTURES[function],
            "outcome": sorted(kinds),
            "result": warm.json(),
            "samples": samples,
            "median": median(samples),
            "peak_rss_kib": None if None in rss else max(rss),
            "calls": calls["counts"],
            "first_request": request.split("\n")[-1] if request else None,
            "floor_samples": floor_samples,
            "floor_median": median(floor_samples) if floor_samples else None,
        }
        if function in BASELINE:
            base, base_rss = [], []
            for _ in range(args.runs):
                outcome = run.invoke("baseline", run.baseline(BASELINE[function]), event, env)
                if outcome.kind != "response":
                    raise SystemExit(f"bench: the baseline failed: {outcome.kind} {outcome.stderr}")
                base.append(outcome.elapsed)
                base_rss.append(outcome.peak_rss_kib)
            entry.update({"baseline_samples": base, "baseline_median": median(base), "baseline_rss_kib": None if None in base_rss else max(base_rss)})
        say(
            f"cold start {function}: {ms(entry['median'])} ({'/'.join(entry['outcome'])}), floor "
            f"{ms(entry['floor_median']) if entry['floor_median'] else '-'}"
            + (f", baseline {ms(entry['baseline_median'])}" if "baseline_median" in entry else "")
        )
        results[function] = entry
    return results


def measured(
    run: Runner, name: str, argv: list[str], event: bytes, env: dict[str, str], latency_ms: float
) -> tuple[runtime_api.Outcome, dict[str, Any]]:
    """One contestant's scale run: the call counter reset just before, the
    added latency on only while it runs. Returns the outcome and the
    sample's common fields."""
    run.aws.reset_calls()
    run.aws.set_latency(latency_ms)
    try:
        outcome = run.invoke(name, argv, event, env)
    finally:
        run.aws.set_latency(0)
    sample = {
        "elapsed": outcome.elapsed,
        "kind": outcome.kind,
        "peak_rss_kib": outcome.peak_rss_kib,
        "calls": run.aws.calls()["counts"],
    }
    return outcome, sample


def purge_at_scale(args: argparse.Namespace, run: Runner, latency_ms: float) -> dict[str, Any]:
    env = function_env(run.aws, "")
    env.update({"PURGE_DELETES_PER_SECOND": "0", "PURGE_CONCURRENCY": str(args.purge_concurrency)})
    event = fixture("purge-snapshots", "direct.json")
    contestants = {
        "ninelives": run.ours("purge-snapshots"),
        "baseline": run.baseline("backup.purge"),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contestants}
    for round_ in range(args.scale_runs):
        # Alternate who goes first, so that any drift of the server over a
        # round does not favour one side.
        for name, argv in sorted(contestants.items(), reverse=bool(round_ % 2)):
            run.aws.reset()
            started = time.monotonic()
            kept = seed_purge(run.aws, args.expired, args.kept, groups=min(100, args.kept))
            seeded = time.monotonic() - started
            before = managed_snapshots(run.aws)
            outcome, sample = measured(run, f"purge-{name}", argv, event, env, latency_ms)
            after = managed_snapshots(run.aws)
            same = after == kept and len(before) == args.expired + args.kept
            sample.update({"deleted": len(before) - len(after), "left_exactly_the_kept": same, "seed_seconds": seeded})
            runs[name].append(sample)
            say(
                f"purge {name} +{latency_ms:g} ms round {round_ + 1}: {ms(outcome.elapsed)} ({outcome.kind}), deleted "
                f"{sample['deleted']}, kept exactly the {args.kept}: {same}, peak {mib(outcome.peak_rss_kib)}, "
                f"seeded in {seeded:.0f} s"
            )
            if not same:
                say(f"purge {name}: result differs; log: {outcome.stderr[-1500:]}")
    return {
        "rounds": args.scale_runs,
        "expired": args.expired,
        "kept": args.kept,
        "latency_ms": latency_ms,
        **{name: summarise(samples) for name, samples in runs.items()},
    }


def paced_purge(args: argparse.Namespace, run: Runner) -> dict[str, Any]:
    """The default pacing (4 deletions a second) on a small backlog: the
    deletion times as the local AWS saw them."""
    env = function_env(run.aws, "")
    env.pop("PURGE_DELETES_PER_SECOND", None)
    run.aws.reset()
    kept = seed_purge(run.aws, args.paced, 10, groups=10)
    run.aws.reset_calls()
    outcome = run.invoke("purge-paced", run.ours("purge-snapshots"), fixture("purge-snapshots", "direct.json"), env)
    times = sorted(run.aws.calls(times=True).get("times", {}).get("ec2:DeleteSnapshot", []))
    window = max((sum(1 for u in times if t <= u < t + 1.0) for t in times), default=0)
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    ok = managed_snapshots(run.aws) == kept
    say(f"paced purge: {len(times)} deletions at {rate:.2f}/s, at most {window} in any second, result right: {ok}")
    return {"deletions": len(times), "rate": rate, "max_in_one_second": window, "elapsed": outcome.elapsed, "right": ok}


def snapshot_at_scale(args: argparse.Namespace, run: Runner, latency_ms: float) -> dict[str, Any]:
    env = function_env(run.aws, "")
    contestants = {
        "ninelives": run.ours("snapshot-volumes"),
        "baseline": run.baseline("backup.snapshot"),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contestants}
    for round_ in range(args.scale_runs):
        for name, argv in sorted(contestants.items(), reverse=bool(round_ % 2)):
            run.aws.reset()
            volumes = seed_snapshot(run.aws, args.instances, args.per_instance, clusters=20)
            when = datetime.datetime.now(datetime.timezone.utc).strftime(TIME_FORMAT)
            event = json.dumps({"tier": "daily", "time": when}).encode()
            outcome, sample = measured(run, f"snapshot-{name}", argv, event, env, latency_ms)
            counts = snapshots_by_volume(run.aws)
            right = set(counts) == volumes and all(n == 1 for n in counts.values())
            sample.update({"snapshots": sum(counts.values()), "one_per_volume": right})
            runs[name].append(sample)
            say(
                f"snapshot {name} +{latency_ms:g} ms round {round_ + 1}: {ms(outcome.elapsed)} ({outcome.kind}), "
                f"{sample['snapshots']} snapshots, one per volume: {right}, peak {mib(outcome.peak_rss_kib)}"
            )
            if not right:
                say(f"snapshot {name}: result differs; log: {outcome.stderr[-1500:]}")
    return {
        "rounds": args.scale_runs,
        "instances": args.instances,
        "volumes": args.instances * args.per_instance,
        "latency_ms": latency_ms,
        **{name: summarise(samples) for name, samples in runs.items()},
    }


def scale_key(kind: str, latency_ms: float) -> str:
    return kind if not latency_ms else f"{kind}+{latency_ms:g}ms"


def scale_latency(key: str) -> float:
    return float(key.split("+", 1)[1].removesuffix("ms")) if "+" in key else 0.0


def scale_keys(results: dict[str, Any]) -> list[str]:
    """The scale runs present, purge first, each by added latency."""
    keys = [k for k in results if k.split("+", 1)[0] in ("purge", "snapshot") and isinstance(results[k], dict)]
    return sorted(keys, key=lambda k: (k.split("+", 1)[0] != "purge", scale_latency(k)))


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    calls: dict[str, int] = {}
    for key in sorted({k for s in samples for k in s["calls"]}):
        calls[key] = int(median([s["calls"].get(key, 0) for s in samples]))
    return {
        "samples": samples,
        "median": median([s["elapsed"] for s in samples]),
        "peak_rss_kib": None
        if any(s["peak_rss_kib"] is None for s in samples)
        else max(s["peak_rss_kib"] for s in samples),
        "calls": calls,
        "all_right": all(s.get("left_exactly_the_kept", s.get("one_per_volume")) for s in samples),
    }


def sizes(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for function in args.functions:
        entry: dict[str, Any] = {}
        binary = os.path.join(args.target, function)
        entry["x86_64"] = {"binary": os.path.getsize(binary), "zip": zipped_size(binary)}
        for arch, folder in (("arm64", "lambda"), ("x86_64-lambda", "lambda-x86_64")):
            package = os.path.join(ROOT, "target", folder, function, "bootstrap.zip")
            if os.path.exists(package):
                # cargo-lambda's zip, as deployed.
                with zipfile.ZipFile(package) as archive:
                    binary = archive.getinfo("bootstrap").file_size
                entry[arch] = {"binary": binary, "zip": os.path.getsize(package)}
        result[function] = entry
    return result


def zipped_size(binary: str) -> int:
    """The deployment package: the binary as `bootstrap`, deflate level 9."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "bootstrap.zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            archive.write(binary, "bootstrap")
        return os.path.getsize(path)


def failover(args: argparse.Namespace, aws: LocalAws) -> dict[str, Any]:
    env = dict(os.environ)
    env.update(aws_env(aws))
    # The bench profile is the release profile: it reuses the release build
    # of the libraries and only links the benchmark.
    completed = subprocess.run(
        ["cargo", "bench", "-q", "--locked", "-p", "ninelives-tests", "--bench", "failover", "--", str(args.failover_runs)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise SystemExit(f"bench: the failover benchmark failed:\n{completed.stderr[-3000:]}")
    rows = {}
    for line in completed.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].endswith(" ms"):
            rows[cells[0]] = {"median": cells[1], "min": cells[2], "max": cells[3]}
    say(f"failover: {rows}")
    return {"rows": rows, "runs": args.failover_runs, "table": completed.stdout}


# --- the report ------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "?"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        memory = int(info.readline().split()[1]) // (1024 * 1024)
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{memory} GiB",
        "kernel": platform.release(),
        "rustc": rustc,
        "python": platform.python_version(),
        "boto3": boto3.__version__,
    }


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if not a or not b else f"{a / b:.1f}x"


def under_64(kib: int | None) -> bool:
    return kib is not None and kib < 64 * 1024


def report(results: dict[str, Any]) -> str:
    out: list[str] = []
    m = results["machine"]
    out.append(f"Measured {results['date']} on {m['cpu']}, {m['memory']}, Linux {m['kernel']}; {m['rustc']}; "
               f"Python {m['python']}, boto3 {m['boto3']}; local AWS: moto {results['moto']} on loopback. "
               f"Commands: {results['command']}.\n")
    targets = []
    cold = results.get("cold_start")
    if cold:
        runs = sorted({e["runs"] for e in cold.values()})
        out.append(f"### Cold start (process start to first result, median of {'/'.join(map(str, runs))})\n")
        out.append("| function | fixture | ninelives | floor | ninelives / floor | Python baseline | baseline / ninelives | first request | calls |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for function, e in cold.items():
            out.append(
                f"| {function} | {e['fixture']} ({'/'.join(e['outcome'])}) | {ms(e['median'])} | "
                f"{ms(e['floor_median']) if e['floor_median'] else 'n/a'} | {ratio(e['median'], e['floor_median'])} | "
                f"{ms(e['baseline_median']) if 'baseline_median' in e else ''} | "
                f"{ratio(e.get('baseline_median'), e['median']) if 'baseline_median' in e else ''} | "
                f"{(e['first_request'] or '').split('&')[0].removeprefix('Action=')} | "
                f"{sum(e['calls'].values())} |"
            )
            if e.get("floor_median"):
                targets.append((f"cold start {function} within 3x of the floor", e["median"] / e["floor_median"] <= 3,
                                ratio(e["median"], e["floor_median"])))
            if "baseline_median" in e:
                targets.append((f"cold start {function} at least 10x faster than the baseline",
                                e["baseline_median"] / e["median"] >= 10, ratio(e["baseline_median"], e["median"])))
        out.append("")
    size = results.get("sizes")
    if size:
        out.append("### Size (stripped release binary and zipped `bootstrap`)\n")
        out.append("x86_64: `cargo build --release`, zipped here at deflate 9; arm64: cargo-lambda's `bootstrap.zip`, as deployed.\n")
        out.append("| function | x86_64 binary | x86_64 zip | arm64 binary (cargo-lambda) | arm64 zip |")
        out.append("|---|---|---|---|---|")
        for function, e in size.items():
            arm = e.get("arm64")
            arm_cells = f"{arm['binary'] / 2**20:.1f} MiB | {arm['zip'] / 2**20:.1f} MiB" if arm else "not built | "
            out.append(
                f"| {function} | {e['x86_64']['binary'] / 2**20:.1f} MiB | {e['x86_64']['zip'] / 2**20:.1f} MiB | "
                f"{arm_cells} |"
            )
            for arch, v in e.items():
                targets.append((f"{function} {arch} zip at most 8 MB", v["zip"] <= 8_000_000, f"{v['zip'] / 1e6:.2f} MB"))
        out.append("")
    if cold:
        out.append("### Memory (peak RSS, VmHWM, of the process at its first result)\n")
        out.append("| function | on its fixture | at scale |")
        out.append("|---|---|---|")
        at_scale = {"purge-snapshots": results.get("purge"), "snapshot-volumes": results.get("snapshot")}
        for function, e in cold.items():
            s = (at_scale.get(function) or {}).get("ninelives")
            out.append(f"| {function} | {mib(e['peak_rss_kib'])} | {mib(s['peak_rss_kib']) if s else ''} |")
            targets.append((f"{function} peak RSS under 64 MiB", under_64(e["peak_rss_kib"]), mib(e["peak_rss_kib"])))
            if s:
                targets.append((f"{function} at scale peak RSS under 64 MiB", under_64(s["peak_rss_kib"]),
                                mib(s["peak_rss_kib"])))
        for function, e in cold.items():
            if "baseline_rss_kib" in e:
                s = (at_scale.get(function) or {}).get("baseline")
                out.append(f"| Python baseline ({BASELINE[function]}) | {mib(e['baseline_rss_kib'])} | "
                           f"{mib(s['peak_rss_kib']) if s else ''} |")
        out.append("")
    for key in scale_keys(results):
        scale = results[key]
        latency = scale["latency_ms"]
        if key.startswith("purge"):
            title = f"Purge at scale: {scale['expired']:,} expired managed snapshots + {scale['kept']:,} kept"
        else:
            title = f"Snapshot at scale: {scale['volumes']:,} volumes on {scale['instances']:,} instances"
        title += f", {latency:g} ms added to every AWS call" if latency else ", moto as it is"
        ours, base = scale["ninelives"], scale["baseline"]
        out.append(f"### {title} (median of {scale['rounds']})\n")
        out.append("| | wall time | result right every run | peak RSS | API calls |")
        out.append("|---|---|---|---|---|")
        for name, e in (("ninelives", ours), ("Python baseline", base)):
            calls = ", ".join(f"{k.split(':', 1)[1]} {v:,}" for k, v in e["calls"].items())
            out.append(f"| {name} | {ms(e['median'])} | {'yes' if e['all_right'] else 'NO'} | {mib(e['peak_rss_kib'])} | {calls} |")
        out.append(f"\nninelives is {ratio(base['median'], ours['median'])} faster than the baseline.\n")
        if key.startswith("purge"):
            where = f"{latency:g} ms added per call" if latency else "moto as it is"
            targets.append((f"purge at scale ({where}) at least 5x faster than the baseline, same result",
                            base["median"] / ours["median"] >= 5 and ours["all_right"] and base["all_right"],
                            ratio(base["median"], ours["median"])))
            if not latency:
                targets.append(("purge at scale peak RSS under 64 MiB", under_64(ours["peak_rss_kib"]),
                                mib(ours["peak_rss_kib"])))
    paced = results.get("paced")
    if paced:
        out.append("### Paced purge (default `PURGE_DELETES_PER_SECOND` = 4)\n")
        out.append(f"{paced['deletions']} deletions at {paced['rate']:.2f} per second, at most "
                   f"{paced['max_in_one_second']} in any one second, as the local AWS received them "
                   f"(EC2 refills DeleteSnapshot at 5 per second); result right: {'yes' if paced['right'] else 'NO'}.\n")
        targets.append(("paced purge stays under EC2's DeleteSnapshot refill (5 per second)",
                        paced["rate"] < 5 and paced["max_in_one_second"] <= 5,
                        f"{paced['rate']:.2f}/s, at most {paced['max_in_one_second']} in any second"))
    fo = results.get("failover")
    if fo:
        out.append(f"### Failover ({fo['runs']} runs, tests/benches/failover.rs)\n")
        out.append(fo["table"].strip() + "\n")
    if targets:
        out.append("### Targets\n")
        out.append("| target | met | measured |")
        out.append("|---|---|---|")
        for name, met, value in targets:
            out.append(f"| {name} | {'yes' if met else '**no**'} | {value} |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=os.path.join(ROOT, "target", "release"), help="folder of the function binaries")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs the baseline (with boto3)")
    parser.add_argument("--runs", type=int, default=20, help="cold starts per contestant")
    parser.add_argument("--scale-runs", type=int, default=3, help="rounds of each scale run")
    parser.add_argument("--expired", type=int, default=10_000)
    parser.add_argument("--kept", type=int, default=1_000)
    parser.add_argument("--paced", type=int, default=40, help="snapshots for the paced purge (0: skip)")
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--per-instance", type=int, default=5)
    parser.add_argument("--purge-concurrency", type=int, default=16)
    parser.add_argument(
        "--latencies", default="0,10,25",
        help="run the scale benchmarks with each of these many ms added to every AWS call",
    )
    parser.add_argument("--failover-runs", type=int, default=7, help="0 skips the failover benchmark")
    parser.add_argument("--only", default="cold,size,purge,paced,snapshot,failover")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--command", default="bash bench/run.sh")
    parser.add_argument("--functions", default=",".join(FUNCTIONS), help="for the cold start and size tables")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a scale run's result is wrong (harness checks)")
    parser.add_argument("--merge", action="store_true", help="keep the sections of an earlier results.json that this run does not measure")
    args = parser.parse_args()
    only = set(args.only.split(","))
    args.functions = args.functions.split(",")
    if args.runs < 1 or args.scale_runs < 1:
        parser.error("--runs and --scale-runs must be at least 1")
    unknown = set(args.functions) - set(FUNCTIONS)
    if unknown:
        parser.error(f"unknown functions: {', '.join(sorted(unknown))}")

    os.makedirs(args.out, exist_ok=True)
    logs = tempfile.mkdtemp(prefix="ninelives-bench-")
    say(f"process logs in {logs}")
    aws = LocalAws(os.path.join(logs, "local-aws.log"))
    results: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "moto": aws.moto,
        "command": f"`{args.command}`",
        "purge_concurrency": args.purge_concurrency,
    }
    try:
        run = Runner(args, aws, logs)
        route53 = boto3.client("route53", endpoint_url=aws.url, region_name=REGION,
                               aws_access_key_id="testing", aws_secret_access_key="testing")
        zone = route53.create_hosted_zone(Name="bench.test", CallerReference=uuid.uuid4().hex)["HostedZone"]["Id"]
        zone_id = zone.rsplit("/", 1)[-1]
        if "size" in only:
            results["sizes"] = sizes(args)
        if "cold" in only:
            results["cold_start"] = cold_start(args, run, zone_id)
        latencies = [float(v) for v in args.latencies.split(",")]
        if "purge" in only:
            for latency in latencies:
                results[scale_key("purge", latency)] = purge_at_scale(args, run, latency)
        if "paced" in only and args.paced:
            results["paced"] = paced_purge(args, run)
        if "snapshot" in only:
            for latency in latencies:
                results[scale_key("snapshot", latency)] = snapshot_at_scale(args, run, latency)
        if "failover" in only and args.failover_runs:
            results["failover"] = failover(args, aws)
    finally:
        aws.stop()
    earlier = os.path.join(args.out, "results.json")
    if args.merge and os.path.exists(earlier):
        with open(earlier) as f:
            # Every section carries its own counts; the header is this
            # run's, with the commands that measured the kept sections.
            earlier_results = json.load(f)
            results = {**earlier_results, **results}
            results["command"] = f"{earlier_results.get('command', '?')}, then `{args.command}`"
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    table = report(results)
    with open(os.path.join(args.out, "RESULTS.md"), "w") as f:
        f.write("## Benchmark results\n\n" + table)
    print(table)
    wrong = [
        f"{key} {name}"
        for key in scale_keys(results)
        for name in ("ninelives", "baseline")
        if not results[key][name]["all_right"]
    ]
    wrong += [
        f"cold start {function} ({'/'.join(e['outcome'])})"
        for function, e in results.get("cold_start", {}).items()
        if not set(e["outcome"]) <= {"response", "error"}
    ]
    wrong += [
        f"cold start {function} (no floor: no first AWS request counted)"
        for function, e in results.get("cold_start", {}).items()
        if e.get("floor_median") is None
    ]
    if "paced" in results and not results["paced"]["right"]:
        wrong.append("paced purge")
    if args.strict and wrong:
        raise SystemExit(f"bench: wrong results: {', '.join(wrong)}")


if __name__ == "__main__":
    main()
