"""A minimal AWS Lambda Runtime API on loopback, for timing one invocation.

Lambda starts a function's process with AWS_LAMBDA_RUNTIME_API=host:port and
the process asks that API for its next event
(GET /2018-06-01/runtime/invocation/next), handles it, and posts the result
(POST .../invocation/<request id>/response, or .../error, or
/runtime/init/error when it cannot start). This module serves exactly that for
one event per process, the same way for every contestant (our Rust functions,
the floor program and the Python baseline), and measures:

- elapsed: from just before the process is spawned to the moment its result
  has been read here (a cold start when the process is new);
- peak_rss_kib: the process's VmHWM (peak resident set) read from /proc
  right after the result arrives, while the process still lives; Lambda
  freezes the process there, and the harness kills it.

Only the standard library, so the harness costs the same for everyone.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"


@dataclass
class Outcome:
    kind: str  # "response", "error", "init-error", "exited" or "timeout"
    body: bytes
    elapsed: float
    peak_rss_kib: int | None
    stderr: str

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.event: bytes | None = None
        self.request_id = ""
        self.deadline_ms = 0
        self.function_arn = ""
        self.served = False
        self.done = threading.Event()
        self.kind = ""
        self.body = b""
        self.at = 0.0
        self.closing = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the process was ended while it waited for its next event

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        state = self.server.state
        if self.path != f"{PREFIX}/invocation/next":
            self._reply(404)
            return
        with state.lock:
            first = not state.served and state.event is not None
            state.served = state.served or first
        if not first:
            # The next event never comes: the process is killed once its
            # result is in (Lambda would freeze it here).
            state.closing.wait(120)
            self._reply(503)
            return
        assert state.event is not None
        self._reply(
            200,
            state.event,
            {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": state.request_id,
                "Lambda-Runtime-Deadline-Ms": str(state.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": state.function_arn,
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
            },
        )

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        now = time.perf_counter()
        if self.path == f"{PREFIX}/invocation/{state.request_id}/response":
            kind = "response"
        elif self.path == f"{PREFIX}/invocation/{state.request_id}/error":
            kind = "error"
        elif self.path == f"{PREFIX}/init/error":
            kind = "init-error"
        else:
            self._reply(404)
            return
        self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})
        with state.lock:
            if not state.done.is_set():
                state.kind, state.body, state.at = kind, body, now
                state.done.set()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


def peak_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def invoke(
    argv: list[str],
    env: dict[str, str],
    event: bytes,
    *,
    function_name: str,
    timeout: float = 900.0,
    stderr_path: str | None = None,
) -> Outcome:
    """Starts `argv` as a Lambda process, gives it `event`, returns its outcome."""
    server = _Server(("127.0.0.1", 0), _Handler)
    state = _State()
    server.state = state
    state.event = event
    state.request_id = str(uuid.uuid4())
    state.deadline_ms = int((time.time() + timeout) * 1000)
    state.function_arn = f"arn:aws:lambda:{env.get('AWS_REGION', 'us-east-1')}:123456789012:function:{function_name}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    process_env = dict(env)
    process_env.update(
        {
            "AWS_LAMBDA_RUNTIME_API": f"{host}:{port}",
            "AWS_LAMBDA_FUNCTION_NAME": function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        }
    )
    stderr = open(stderr_path or os.devnull, "wb")
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=process_env, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
    try:
        deadline = started + timeout
        while not state.done.wait(0.01):
            if process.poll() is not None:
                # Give a result posted just before exit a moment to land.
                state.done.wait(0.2)
                break
            if time.perf_counter() > deadline:
                break
        if state.done.is_set():
            rss = peak_rss_kib(process.pid)
            outcome = Outcome(state.kind, state.body, state.at - started, rss, "")
        elif process.poll() is not None:
            outcome = Outcome("exited", str(process.returncode).encode(), time.perf_counter() - started, None, "")
        else:
            outcome = Outcome("timeout", b"", time.perf_counter() - started, peak_rss_kib(process.pid), "")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        stderr.close()
        state.closing.set()
        server.shutdown()
        server.server_close()
    if stderr_path:
        with open(stderr_path, errors="replace") as log:
            outcome.stderr = log.read()[-4000:]
    return outcome
