#!/usr/bin/env python3
"""The credential leak check (run by scripts/secrets-check.sh, which says
how): a full narrated demo run (scripts/demo.py: all seven functions,
through tools/replay) with distinctive sentinel credentials configured by
reference, and every byte it produces searched for them.

- A local AWS of its own (local/moto_launcher.py on SECRETS_CHECK_AWS_PORT,
  default 5301, region ca-west-1) whose AWS secret access key is a sentinel.
- The Redis password is a sentinel: the demo's redis-server chain requires
  it, and the functions read it from an SSM SecureString
  (REDIS_PASSWORD_FROM). The PostgreSQL user and password are sentinels in
  a Secrets Manager JSON secret (PGUSER_FROM / PGPASSWORD_FROM, a key
  each): fetched and laid over the configuration at every start-up.
- Every summary is published to an SNS topic (NOTIFY_TOPIC_ARN) with an SQS
  queue subscribed, so the notification bodies are searched too.
- RUST_LOG=debug: every log line the functions (and the AWS SDK, the
  drivers) write at debug level or above is captured.

Captured: the demo's stdout and stderr, every replay's stdout and stderr
(NINELIVES_DEMO_LOG), every notification. The check fails if any sentinel,
any `scheme://user:password@` connection string, or the AWS secret key
appears in any of it. Exit 0 clean, 1 leak or failure.

Option: --keep leaves the capture directory (it is kept anyway on failure).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
REGION = "ca-west-1"
PORT = int(os.environ.get("SECRETS_CHECK_AWS_PORT", "5301"))
HOSTS = os.environ.get("SECRETS_CHECK_HOSTS", "127.0.12.2,127.0.12.3,127.0.12.4,127.0.12.5")
REDIS_PORT = os.environ.get("SECRETS_CHECK_REDIS_PORT", "17630")
# Built by scripts/secrets-check.sh (cargo build --bin replay).
REPLAY = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "debug" / "replay"
DEMO_TIMEOUT = int(os.environ.get("SECRETS_CHECK_TIMEOUT_SECONDS", "300"))
# `scheme://user:password@host`: a connection string with a password in it.
CONNECTION_STRING = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:\"']+:[^\s/@\"']+@")


def say(text: str) -> None:
    print(f"secrets-check: {text}", flush=True)


def sentinel(what: str) -> str:
    # Letters and digits only: no quoting anywhere can change it.
    return f"Sntl{what}{secrets.token_hex(8)}"


def start_aws(log: Path) -> subprocess.Popen[bytes]:
    endpoint = f"http://127.0.0.1:{PORT}"
    try:
        urllib.request.urlopen(endpoint + "/_ninelives/info", timeout=1)
        sys.exit(f"secrets-check: port {PORT} is taken (scripts/local-aws.sh running on it?); set SECRETS_CHECK_AWS_PORT")
    except OSError:
        pass
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "local" / "moto_launcher.py"), "--port", str(PORT)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, "NINELIVES_EMULATOR_LOG": ""},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"secrets-check: the local AWS exited ({proc.returncode}); see {log}")
        try:
            urllib.request.urlopen(endpoint + "/_ninelives/info", timeout=1)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("secrets-check: the local AWS did not answer within 60 s")


def scan(files: list[Path], needles: dict[str, str]) -> list[str]:
    """Every line of `files` holding a needle or a connection string."""
    found = []
    for path in files:
        if not path.exists():
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            hits = [name for name, needle in needles.items() if needle in line]
            if CONNECTION_STRING.search(line):
                hits.append("a user:password@ connection string")
            if hits:
                found.append(f"{path.name}:{n}: {', '.join(hits)}: {line[:300]}")
    return found


# The process group of the running demo, for the clean-up in main's finally.
demo_group: list[int] = []


def main() -> int:
    # A SIGTERM (the wrapper's timeout) unwinds through the finally below,
    # so the local AWS is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    args = sys.argv[1:]
    keep = "--keep" in args
    work = Path(tempfile.mkdtemp(prefix="ninelives-secrets-check-"))
    started = time.monotonic()
    values = {
        "the Redis password": sentinel("Redis"),
        "the PostgreSQL user": sentinel("pguser"),
        "the PostgreSQL password": sentinel("Pg"),
        "the AWS secret access key": sentinel("AwsSecret"),
    }
    if not REPLAY.is_file():
        sys.exit(f"secrets-check: {REPLAY} not found: run scripts/secrets-check.sh (it builds it)")
    aws = start_aws(work / "moto.log")
    try:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{PORT}",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "AKIASECRETSCHECK0000",
            "AWS_SECRET_ACCESS_KEY": values["the AWS secret access key"],
            "AWS_EC2_METADATA_DISABLED": "true",
            "RUST_LOG": "debug",
        }
        os.environ.update(env)
        ssm = boto3.client("ssm", region_name=REGION)
        secretsmanager = boto3.client("secretsmanager", region_name=REGION)
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION, endpoint_url=env["AWS_ENDPOINT_URL"])
        ssm.put_parameter(Name="/ninelives/redis-password", Value=values["the Redis password"],
                          Type="SecureString", Overwrite=True)
        secret_arn = secretsmanager.create_secret(
            Name="ninelives/postgres",
            SecretString=json.dumps({"username": values["the PostgreSQL user"],
                                     "password": values["the PostgreSQL password"]}),
        )["ARN"]
        topic = sns.create_topic(Name="ninelives-notifications")["TopicArn"]
        queue = sqs.create_queue(QueueName="ninelives-notifications")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        demo_env = {
            **env,
            "REDIS_PASSWORD_FROM": "/ninelives/redis-password",
            "PGUSER_FROM": f"{secret_arn}:username",
            "PGPASSWORD_FROM": f"{secret_arn}:password",
            "NOTIFY_TOPIC_ARN": topic,
            "NINELIVES_DEMO_HOSTS": HOSTS,
            "NINELIVES_DEMO_REDIS_PORT": REDIS_PORT,
            "NINELIVES_DEMO_REDIS_PASSWORD": values["the Redis password"],
            "NINELIVES_DEMO_LOG": str(work / "replays.log"),
            "NINELIVES_DEMO_REPLAY": str(REPLAY),
        }
        say(f"demo run with credentials by reference (capture in {work})")
        with (work / "demo.out").open("w") as out, (work / "demo.err").open("w") as err:
            # A session of its own: on a timeout the demo and everything it
            # started (redis-server, the MongoDB peer) are killed together.
            demo = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "demo.py")], cwd=ROOT, env=demo_env,
                                    stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
            demo_group.append(demo.pid)
            try:
                demo.wait(timeout=DEMO_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait()
                say(f"the demo did not finish within {DEMO_TIMEOUT} s; capture kept in {work}")
                keep = True
                return 1
        replays = (work / "replays.log").read_text(errors="replace") if (work / "replays.log").exists() else ""
        functions = sorted(set(re.findall(r"^== replay ([a-z-]+) ", replays, re.M)))
        with (work / "notifications.log").open("w") as log:
            count = 0
            while True:
                batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
                if not batch:
                    break
                for m in batch:
                    log.write(m["Body"] + "\n")
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
                    count += 1
        files = [work / "demo.out", work / "demo.err", work / "replays.log", work / "notifications.log"]
        size = sum(f.stat().st_size for f in files if f.exists())
        say(f"demo exit {demo.returncode}; {len(functions)} functions replayed ({', '.join(functions)}); "
            f"{replays.count('== replay ')} replays, {count} notifications, {size} bytes captured")
        failures = []
        if demo.returncode != 0:
            failures.append(f"the demo failed (exit {demo.returncode}): see {work}/demo.out and demo.err")
        if len(functions) != 7:
            failures.append(f"expected all seven functions to run, got {functions}")
        if count == 0:
            failures.append("no notification was captured: the capture is not what it should be")
        if "debug" not in replays.lower():
            failures.append("no debug log line was captured: RUST_LOG did not reach the functions")
        leaks = scan(files, values)
        for line in leaks:
            failures.append(f"leak: {line}")
        for failure in failures:
            say(failure)
        say(f"{'FAILED' if failures else 'clean'}: searched for {len(values)} sentinels and user:password@ in "
            f"{size} bytes, {time.monotonic() - started:.0f} s")
        if failures:
            keep = True
        return 1 if failures else 0
    finally:
        # The demo's session (redis-server, the MongoDB peer) goes too, also
        # when the wrapper's timeout ended this run mid-demo.
        for pgid in demo_group:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        aws.kill()
        aws.wait()
        if keep:
            say(f"capture kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
