"""BASELINE: a minimal Lambda custom runtime for the Python baseline.

Run as `python3 bootstrap.py backup.purge`: imports the handler's module (and
with it boto3, as a Python Lambda does at init), then fetches events from
AWS_LAMBDA_RUNTIME_API and posts each result, like the managed Python runtime
but without its runtime interface client (awslambdaric), so it starts at
least as fast as the real thing would: the comparison favours the baseline.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

API = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime"


def post(path: str, body: object) -> None:
    request = urllib.request.Request(
        f"{API}/{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    urllib.request.urlopen(request).read()


def main() -> None:
    module_name, function_name = sys.argv[1].rsplit(".", 1)
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as err:  # what the managed runtime reports as Runtime.ImportModuleError
        post("init/error", {"errorType": type(err).__name__, "errorMessage": str(err)})
        raise
    while True:
        with urllib.request.urlopen(f"{API}/invocation/next") as response:
            request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(response.read() or b"{}")
        try:
            result = handler(event, None)
        except Exception as err:
            post(
                f"invocation/{request_id}/error",
                {"errorType": type(err).__name__, "errorMessage": str(err), "stackTrace": traceback.format_exc()},
            )
            continue
        post(f"invocation/{request_id}/response", result)


if __name__ == "__main__":
    main()
