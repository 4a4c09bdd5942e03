"""The hostile corpus at the process level: each function's debug binary is
started once under a minimal Lambda Runtime API on loopback (the protocol
bench/runtime_api.py serves, here for a sequence of events) and handed one
malformed event after another, bodies that are not JSON at all included.

For every event the process must post an answer: an error (POST
.../invocation/<id>/error) whose errorMessage contains the manifest's
expected text, or for an SQS batch a response failing exactly the
manifest's messages. After the last event it must ask for the next one
(alive, not crashed), and its stderr must never say "panicked".

Loopback only (127.0.16.2, ports 17640-17658 for the API); AWS calls go to
127.0.16.2:17659, where nothing listens, so a function that tried to act on
a hostile event could not change anything anywhere. Bounded: every event
has 60 seconds, and the process is killed at the end, or on any failure.

Usage: python3 tests/hostile/process_check.py --target <dir with the debug binaries>
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PREFIX = "/2018-06-01/runtime"
HOST = "127.0.16.2"
FIRST_PORT = 17640
DEAD_AWS = f"http://{HOST}:17659"
EVENT_SECONDS = 60.0
# What lambda_runtime answers for a body that is not the JSON it expects.
UNMARSHAL = "failed to deserialize the incoming data into the function's payload type"


def corpus_bytes(manifest: dict[str, Any], relative: str) -> bytes:
    """A corpus file, with the placeholders of `*.in` files expanded as
    tests/hostile.rs expands them."""
    data = (HERE / relative).read_bytes()
    if not relative.endswith(".in"):
        return data
    text = data.decode()
    for placeholder, rule in manifest["expand"].items():
        if placeholder not in text:
            continue
        if "nest" in rule:
            value = "[" * rule["nest"] + "]" * rule["nest"]
        else:
            value = rule["repeat"] * rule["times"]
        text = text.replace(placeholder, value)
    return text.encode()


class State:
    def __init__(self, events: list[bytes]) -> None:
        self.lock = threading.Lock()
        self.events = events
        self.next = 0
        # The request id given with each event, in order.
        self.ids: list[str] = []
        # Answers by request id; any second answer to one id, or one to
        # an id never given, is a problem of its own.
        self.answers: dict[str, tuple[str, bytes]] = {}
        self.strays: list[str] = []
        self.answered = threading.Event()
        self.asked_again = threading.Event()
        self.closing = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the process was killed while it waited

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        state = self.server.state
        if self.path != f"{PREFIX}/invocation/next":
            self.reply(404)
            return
        with state.lock:
            index = state.next
            state.next += 1
            if index < len(state.events):
                request_id = str(uuid.uuid4())
                state.ids.append(request_id)
        if index >= len(state.events):
            # Alive and asking for more: the check is over.
            state.asked_again.set()
            state.closing.wait(EVENT_SECONDS)
            self.reply(503)
            return
        self.reply(
            200,
            state.events[index],
            {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": request_id,
                "Lambda-Runtime-Deadline-Ms": str(int((time.time() + EVENT_SECONDS) * 1000)),
                "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:ap-southeast-5:123456789012:function:hostile",
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
            },
        )

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = self.path.removeprefix(f"{PREFIX}/").split("/")
        if parts == ["init", "error"]:
            request_id, kind = "init", "init-error"
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            request_id, kind = parts[1], parts[2]
        else:
            self.reply(404)
            return
        self.reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})
        with state.lock:
            if request_id in state.answers or request_id not in state.ids:
                state.strays.append(f"{kind} for {request_id}: {body[:200]!r}")
            else:
                state.answers[request_id] = (kind, body)
            state.answered.set()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    state: State

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The process is killed at the end, mid keep-alive: not a finding.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def cases_for(manifest: dict[str, Any], function: str) -> list[tuple[str, bytes, Any]]:
    """(name, body, expectation) for every case this function gets here:
    every body that is not JSON, and every JSON case that ends in an error
    or a failed batch without asking AWS (`process_skip` lists the ones
    that need the inventory to answer)."""
    out = []
    for file, serde_text in manifest["not_json"].items():
        if file in manifest.get("process_skip", []):
            continue
        out.append((file, corpus_bytes(manifest, file), [UNMARSHAL, serde_text]))
    for file, expected in manifest["functions"][function].items():
        if file in manifest.get("process_skip", []):
            continue
        if isinstance(expected, dict) and "accepted" in expected:
            continue
        out.append((file, corpus_bytes(manifest, file), expected))
    return out


def judge(kind: str, body: bytes, expected: Any) -> str | None:
    try:
        answer = json.loads(body)
    except ValueError:
        return f"{kind} body is not JSON: {body[:200]!r}"
    if isinstance(expected, (str, list)):
        if kind != "error":
            return f"expected an error, got {kind}: {body[:300]!r}"
        message = answer.get("errorMessage", "")
        for part in [expected] if isinstance(expected, str) else expected:
            if part not in message:
                return f"errorMessage {message[:300]!r} does not contain {part!r}"
        return None
    if kind != "response":
        return f"expected a batch response, got {kind}: {body[:300]!r}"
    failed = {f.get("itemIdentifier") for f in answer.get("batchItemFailures", [])}
    if failed != set(expected):
        return f"failed messages {sorted(failed)}, expected {sorted(expected)}"
    return None


def wait_answer(state: State, process: subprocess.Popen[bytes], index: int) -> tuple[str, bytes] | str:
    """The answer to event `index`, or why there is none."""
    deadline = time.monotonic() + EVENT_SECONDS
    while True:
        with state.lock:
            if len(state.ids) > index and state.ids[index] in state.answers:
                return state.answers[state.ids[index]]
        if process.poll() is not None:
            return f"the process exited ({process.returncode})"
        if time.monotonic() > deadline:
            return f"no answer in {EVENT_SECONDS:.0f} s"
        state.answered.wait(0.05)
        state.answered.clear()


def check(binary: Path, function: str, port: int, manifest: dict[str, Any]) -> list[str]:
    cases = cases_for(manifest, function)
    started = time.monotonic()
    state = State([body for _, body, _ in cases])
    server = Server((HOST, port), Handler)
    server.state = state
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": f"{HOST}:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "hostile",
        "AWS_ENDPOINT_URL": DEAD_AWS,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "ap-southeast-5",
        "AWS_EC2_METADATA_DISABLED": "true",
        "HOSTED_ZONE_ID": "Z0HOSTILE0000000000000",
        "RUST_BACKTRACE": "1",
    }
    problems: list[str] = []
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen([str(binary)], env=env, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        try:
            for index, (name, _, expected) in enumerate(cases):
                answer = wait_answer(state, process, index)
                if isinstance(answer, str):
                    problems.append(f"{function} {name}: {answer}")
                    break
                problem = judge(*answer, expected)
                if problem:
                    problems.append(f"{function} {name}: {problem}")
            if not problems and not state.asked_again.wait(EVENT_SECONDS):
                problems.append(f"{function}: did not ask for its next event after the last one")
            if process.poll() is not None and not problems:
                problems.append(f"{function}: the process exited ({process.returncode})")
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            state.closing.set()
            server.shutdown()
            server.server_close()
        stderr.seek(0)
        log = stderr.read().decode(errors="replace")
    problems += [f"{function}: a stray answer: {stray}" for stray in state.strays]
    if "panicked" in log:
        at = log.index("panicked")
        problems.append(f"{function}: stderr says panicked: {log[max(0, at - 200) : at + 600]}")
    print(
        f"process check: {function}: {len(cases)} events, {len(problems)} problems, "
        f"{time.monotonic() - started:.1f} s",
        flush=True,
    )
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="directory of the debug binaries (target/debug)")
    parser.add_argument("--functions", help="comma-separated; default every function of the manifest")
    args = parser.parse_args()
    manifest = json.loads((HERE / "manifest.json").read_text())
    problems: list[str] = []
    started = time.monotonic()
    for offset, function in enumerate(manifest["functions"]):
        if args.functions and function not in args.functions.split(","):
            continue
        binary = Path(args.target) / function
        if not binary.is_file():
            problems.append(f"{binary}: not built (cargo build -p {function})")
            continue
        problems += check(binary, function, FIRST_PORT + offset, manifest)
    print(f"process check: {time.monotonic() - started:.1f} s", flush=True)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
