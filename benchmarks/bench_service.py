"""Load test for `rollbook serve` (loopback only, bounded): N concurrent clients submit a
1,000-pupil school batch (a year of marks from `rollbook sample`) for a fixed number of requests
or seconds, whichever ends first, and the figures are printed: requests per second and p50 / p99
latency of the batch endpoint, plus /healthz latency measured while the batches run (evaluation
runs in worker threads, so health checks should stay fast).

    .venv/bin/python benchmarks/bench_service.py --pupils 1000 --clients 4 --requests 40 --seconds 120

Each request is the same batch, so after the first only the evaluation and the ledger lookup
repeat (no new actions are recorded): this measures the service's evaluation throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
ROLLBOOK = Path(sys.executable).with_name("rollbook")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pupils", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--requests", type=int, default=40, help="stop after this many batches (default 40)")
    parser.add_argument("--seconds", type=float, default=120, help="or after this many seconds (default 120)")
    parser.add_argument("--workers", type=int, default=2, help="the server's evaluation threads (default 2)")
    parser.add_argument("--policy", default="mason-moor", help="the school policy (default mason-moor)")
    parser.add_argument("--as-of", default="2026-03-13")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rollbook-bench-service-") as tmp:
        tmp = Path(tmp)
        subprocess.run([str(ROLLBOOK), "sample", "--pupils", str(args.pupils), "--seed", "7", "--out", str(tmp / "reg")],
                       check=True, capture_output=True)
        body = {"as_of": args.as_of}
        for part in ("marks", "pupils", "calendar"):
            body[part] = (tmp / "reg" / f"{part}.csv").read_text()
        payload = json.dumps(body).encode()
        key = "bench-key"
        sys.path.insert(0, str(REPO))
        from engine.service_auth import hash_key, key_entry

        (tmp / "keys.yaml").write_text("keys:\n" + key_entry("bench", hash_key(key), args.policy, None))
        port = _free_port()
        log = open(tmp / "server.log", "w")
        server = subprocess.Popen([str(ROLLBOOK), "serve", "--policies", str(REPO / "policies"), "--ledger",
                                   f"sqlite:///{tmp / 'ledger.db'}", "--keys", str(tmp / "keys.yaml"), "--port", str(port),
                                   "--workers", str(args.workers), "--reload-interval", "0"], stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("the server did not start: " + (tmp / "server.log").read_text())
                    time.sleep(0.2)
            headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
            with httpx.Client(timeout=600) as c:  # the first batch records the actions: not timed
                first = c.post(f"{url}/v1/schools/{args.policy}/batches", content=payload, headers=headers)
                first.raise_for_status()
                evaluated = first.json()["evaluated_actions"]

            latencies: list[float] = []
            failures: list[int] = []
            lock = threading.Lock()
            issued = 0
            stop_at = time.monotonic() + args.seconds

            def client_loop() -> None:
                nonlocal issued
                with httpx.Client(timeout=600) as c:
                    while True:
                        with lock:
                            if issued >= args.requests or time.monotonic() >= stop_at:
                                return
                            issued += 1
                        t = time.perf_counter()
                        r = c.post(f"{url}/v1/schools/{args.policy}/batches", content=payload, headers=headers)
                        elapsed = time.perf_counter() - t
                        with lock:
                            (latencies.append(elapsed) if r.status_code == 200 else failures.append(r.status_code))

            health: list[float] = []
            done = threading.Event()

            def health_loop() -> None:
                with httpx.Client(timeout=60) as c:
                    while not done.is_set():
                        t = time.perf_counter()
                        c.get(url + "/healthz")
                        health.append(time.perf_counter() - t)
                        time.sleep(0.2)

            prober = threading.Thread(target=health_loop)
            prober.start()
            started = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                for f in [pool.submit(client_loop) for _ in range(args.clients)]:
                    f.result()
            wall = time.perf_counter() - started
            done.set()
            prober.join()
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()

    marks = sum(1 for _ in body["marks"].splitlines()) - 1
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"batch: {args.pupils} pupils, {marks:,} marks, {len(payload) / 1e6:.1f} MB JSON body (CSV parts), "
          f"policy {args.policy}, {evaluated} actions evaluated per batch")
    print(f"clients: {args.clients}, server evaluation threads: {args.workers}")
    print(f"batches: {len(latencies)} ok, {len(failures)} failed {failures if failures else ''}in {wall:.1f} s "
          f"-> {len(latencies) / wall:.2f} requests/s")
    if latencies:
        print(f"batch latency: p50 {_percentile(latencies, 0.5):.2f} s, p99 {_percentile(latencies, 0.99):.2f} s, "
              f"max {max(latencies):.2f} s")
    if health:
        print(f"/healthz during the load: {len(health)} probes, p50 {_percentile(health, 0.5) * 1000:.1f} ms, "
              f"p99 {_percentile(health, 0.99) * 1000:.1f} ms, max {max(health) * 1000:.1f} ms")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
