"""How fast is `rollbook backtest` over a whole academic year?

Registers from `rollbook sample --seed 1 --format parquet` (cached and reused under --cache,
default /tmp/rollbook-bench/backtest-<size>-parquet):

    school   1 school, 1,000 pupils           (~370k marks)
    trust    10 schools, 25,000 pupils        (~9.2M marks; `rollbook sample --schools 10`)

For each (size, policy) it replays the register's whole academic year (its first to its last open
day) with engine.backtest.run_backtest and the built-in rules engine, in a child process of its
own, as `rollbook backtest --format json --out FILE` does (the action records streamed to the JSON
report, here written to /dev/null, not kept), and prints the wall time in seconds (register load,
policy check and writing the report included), where it
went (run_backtest's timings: calendar, cumulative lists, per-day facts and predicates, the
sequential decisions, the action records; and writing the JSON report), the actions emitted, and
the child's peak memory (VmHWM, MB).

Then, once, the naive loop on a small register (examples/sample-register, 60 pupils, or --naive-
register): `eval` on every school day with the earlier days' actions as prior actions
(engine.backtest.naive_backtest), against the backtest on the same register and year, with the
ratio, and a check that the two emitted exactly the same action records.

    .venv/bin/python benchmarks/bench_backtest.py                          # school: all policies; trust: two
    .venv/bin/python benchmarks/bench_backtest.py --sizes school --policies national
    options: --sizes school,trust --policies a,b --trust-policies a,b --no-naive --cache DIR

A script, not a test: it prints figures; it exits 1 if a run fails or the naive check disagrees.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SIZES = {"school": (1000, 1), "trust": (25000, 10)}
ALL_POLICIES = ["national", "burton-hathow", "hertfordshire-primary", "james-marks-academy", "mason-moor",
                "middleton-st-marys"]
# The two with the most per-day work on a trust: the most rules that read the ledger and the most actions.
HEAVIEST = ["burton-hathow", "middleton-st-marys"]


def peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(spec: dict) -> dict:
    """One measurement, in its own interpreter."""
    sys.path.insert(0, str(REPO))
    from engine.backtest import ReportWriter, naive_backtest, run_backtest

    policy = REPO / "policies" / f"{spec['policy']}.yaml"
    started = time.perf_counter()
    if spec["mode"] == "naive":
        actions = naive_backtest(policy, spec["register"], spec["from"], spec["to"])
        out = {"seconds": time.perf_counter() - started, "actions": len(actions)}
        if spec.get("dump"):
            Path(spec["dump"]).write_text(json.dumps(actions, sort_keys=True), encoding="utf-8")
    elif spec.get("dump"):
        result = run_backtest(policy, spec["register"], spec["from"], spec["to"])
        out = {"seconds": time.perf_counter() - started, "actions": result.action_count, "days": len(result.days),
               "timings": result.timings, "per_day_metrics": result.per_day_metrics}
        Path(spec["dump"]).write_text(json.dumps(result.actions, sort_keys=True), encoding="utf-8")
    else:
        # As `rollbook backtest --format json --out FILE` runs it: the records stream to the report.
        writer = ReportWriter("json", spec["register"])
        writing = [0.0]

        def on_actions(records):
            t = time.perf_counter()
            writer.add(records)
            writing[0] += time.perf_counter() - t

        result = run_backtest(policy, spec["register"], spec["from"], spec["to"], keep_actions=False,
                              on_actions=on_actions)
        t = time.perf_counter()
        with open(os.devnull, "w", encoding="utf-8") as sink:
            writer.finish(result, sink)
        writing[0] += time.perf_counter() - t
        out = {"seconds": time.perf_counter() - started, "actions": result.action_count, "days": len(result.days),
               "timings": {**result.timings, "report": writing[0]}, "per_day_metrics": result.per_day_metrics}
    out["peak_mb"] = peak_mb()
    return out


def run_child(spec: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1] if (done.stderr or done.stdout) else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def ensure_register(cache: Path, size: str) -> Path:
    pupils, schools = SIZES[size]
    folder = cache / f"backtest-{size}-parquet"
    if not (folder / "marks.parquet").exists():
        print(f"writing the {size} register to {folder} ...", flush=True)
        exe = Path(sys.executable).with_name("rollbook")
        subprocess.run([str(exe), "sample", "--pupils", str(pupils), "--schools", str(schools), "--seed", "1",
                        "--format", "parquet", "--out", str(folder), "--force"], check=True)
    return folder


def year_of(folder: Path) -> tuple[str, str]:
    """The register's first and last open day."""
    import duckdb

    con = duckdb.connect()
    files = sorted(folder.glob("calendar.*"))
    source = f"read_parquet('{files[0]}')" if files[0].suffix == ".parquet" else f"read_csv('{files[0]}')"
    first, last = con.execute(f"SELECT min(date), max(date) FROM {source} WHERE open_am OR open_pm").fetchone()
    return str(first), str(last)


def machine() -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import duckdb

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, DuckDB {duckdb.__version__}, "
            f"load average {load:.1f} at start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child")
    parser.add_argument("--sizes", default="school,trust")
    parser.add_argument("--policies", default=",".join(ALL_POLICIES), help="policies for the school size")
    parser.add_argument("--trust-policies", default=",".join(HEAVIEST), help="policies for the trust size")
    parser.add_argument("--cache", default="/tmp/rollbook-bench")
    parser.add_argument("--naive-register", default=str(REPO / "examples" / "sample-register"))
    parser.add_argument("--no-naive", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    failed = 0
    print(f"machine: {machine()}")
    cache = Path(args.cache)
    for size in args.sizes.split(","):
        folder = ensure_register(cache, size)
        first, last = year_of(folder)
        policies = (args.trust_policies if size == "trust" else args.policies).split(",")
        pupils, schools = SIZES[size]
        print(f"\n{size}: {pupils:,} pupils, {schools} school(s), {first} to {last}")
        print(f"{'policy':<22} {'seconds':>8} {'days':>5} {'actions':>8} {'MB':>6} | "
              f"{'load+check':>10} {'calendar':>8} {'lists':>6} {'facts':>6} {'decide':>6} {'records':>7} {'report':>6}")
        for policy in policies:
            r = run_child({"mode": "backtest", "policy": policy, "register": str(folder), "from": first, "to": last})
            if "error" in r:
                failed += 1
                print(f"{policy:<22} FAILED: {r['error']}")
                continue
            t = r["timings"]
            load = r["seconds"] - t.get("calendar", 0) - t.get("lists", 0) - t.get("facts", 0) - t.get("decide", 0) \
                - t.get("records", 0) - t.get("report", 0)
            per_day = f"   per day: {'; '.join(r['per_day_metrics'])}" if r["per_day_metrics"] else ""
            print(f"{policy:<22} {r['seconds']:>8.2f} {r['days']:>5} {r['actions']:>8,} {r['peak_mb']:>6.0f} | "
                  f"{load:>10.2f} {t.get('calendar', 0):>8.2f} {t.get('lists', 0):>6.2f} {t.get('facts', 0):>6.2f} "
                  f"{t.get('decide', 0):>6.2f} {t.get('records', 0):>7.2f} {t.get('report', 0):>6.2f}{per_day}", flush=True)
    if not args.no_naive:
        folder = Path(args.naive_register)
        first, last = year_of(folder)
        print(f"\nnaive loop (eval every school day with the earlier days' actions as prior) on {folder}, "
              f"{first} to {last}, burton-hathow:")
        scratch = Path(args.cache) / "backtest-naive-check"
        scratch.mkdir(parents=True, exist_ok=True)
        spec = {"policy": "burton-hathow", "register": str(folder), "from": first, "to": last}
        fast = run_child({**spec, "mode": "backtest", "dump": str(scratch / "backtest.json")})
        slow = run_child({**spec, "mode": "naive", "dump": str(scratch / "naive.json")})
        if "error" in fast or "error" in slow:
            print("FAILED:", fast.get("error") or slow.get("error"))
            return 1
        same = (scratch / "backtest.json").read_text() == (scratch / "naive.json").read_text()
        print(f"  backtest {fast['seconds']:.2f} s, naive {slow['seconds']:.2f} s: {slow['seconds'] / fast['seconds']:.1f}x; "
              f"{fast['actions']:,} actions, identical records: {'yes' if same else 'NO'}")
        failed += 0 if same else 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
