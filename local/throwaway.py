"""A throw-away local AWS for measurements: local/moto_launcher.py on a free
loopback port, never the server of scripts/local-aws.sh (whose state the
tests and the developer rely on). Used by local/bench_tags.py and
bench/bench.py; run with the local AWS's venv Python (it has moto).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import IO, Any

HERE = os.path.dirname(os.path.abspath(__file__))


def start(extra: list[str], logfile: IO[bytes], timeout: float = 60) -> tuple[subprocess.Popen[bytes], str, dict[str, Any]]:
    """Starts the launcher with `extra` arguments; returns the process, its
    endpoint and its /_ninelives/info once it answers (SystemExit if it
    dies or does not answer within `timeout` seconds)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "moto_launcher.py"), "--port", str(port), *extra],
        stdout=logfile,
        stderr=logfile,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ, NINELIVES_EMULATOR_LOG=""),
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(endpoint + "/_ninelives/info", timeout=1) as answer:
                return proc, endpoint, json.load(answer)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise SystemExit(f"the local AWS ({' '.join(extra) or 'no options'}) did not answer on {endpoint}")
