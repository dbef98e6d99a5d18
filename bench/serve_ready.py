"""Time from ``crmhost serve`` to a ready ``/readyz``, and the server's idle memory.

Runs the embedded default (SQLite, in-process jobs) in a fresh data directory, so the time
includes the first-start migration. Prints one JSON object.

    uv run python bench/serve_ready.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def one_run(idle_s: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRMHOST_")}
        env["CRMHOST_DATA_DIR"] = data
        port = _free_port()
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "crmhost", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None:
                    raise SystemExit("crmhost serve exited before it was ready")
                time.sleep(0.01)
            ready_s = time.perf_counter() - start
            time.sleep(idle_s)
            return ready_s, _rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle-s", type=float, default=3.0)
    args = parser.parse_args()
    runs = [one_run(args.idle_s) for _ in range(args.runs)]
    ready = [r for r, _ in runs]
    rss = [m for _, m in runs]
    print(
        json.dumps(
            {
                "runs": args.runs,
                "serve_to_ready_s_median": round(statistics.median(ready), 3),
                "serve_to_ready_s_max": round(max(ready), 3),
                "idle_rss_mb_median": round(statistics.median(rss), 1),
                "plugins": "installed (hubspot, salesforce)",
            }
        )
    )


if __name__ == "__main__":
    main()
