"""Run taskjob's benchmarks (B1-B4) against a real control plane and print their figures.

    python benchmarks/run.py                 # all four (about 20 minutes on 2 cores)
    python benchmarks/run.py --quick         # smaller sizes (about 10 minutes)
    python benchmarks/run.py --full          # the issue's sizes run to the end (B4: 1,000 x 10; an hour or more)
    python benchmarks/run.py --only B1,B3    # a subset
    python benchmarks/run.py --only B2 --b2-rounds 5   # B2 at 200 QPS: 5 rotated rounds, judged on the medians
    python benchmarks/run.py --kubeconfig .testenv/kubeconfig   # an already running cluster
    python benchmarks/run.py --only B5 --kubeconfig .testenv/kubeconfig   # taskjob vs Argo on the real node

Without --kubeconfig, a private testenv is started in $TMPDIR/taskjob-bench-testenv (with the controllers'
client QPS raised, so the Job controller is not the bottleneck) and stopped at the end (--keep-testenv
keeps it). Figures go to stdout as Markdown; --json also writes them as JSON. Nothing here asserts a
timing: the tables say which goals were met and by how much others were missed.
B5 (Argo Workflows side by side, `make bench-argo`) needs the real node of `make testenv`, so it runs only
when asked for with --only and --kubeconfig.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import ROOT, Cluster, log  # noqa: E402

TESTENV_ENV = {"TESTENV_CONTROLLER_QPS": "200", "TESTENV_CONCURRENT_JOB_SYNCS": "20"}


def start_testenv(state: Path) -> str:
    """Start (or reuse) the private testenv; return its kubeconfig."""
    env = {**os.environ, "TESTENV_DIR": str(state), **TESTENV_ENV}
    subprocess.run([str(ROOT / "tests" / "testenv" / "up.sh")], env=env, check=True)
    return str(state / "kubeconfig")


def stop_testenv(state: Path) -> None:
    """Stop the private testenv and remove its state."""
    env = {**os.environ, "TESTENV_DIR": str(state)}
    subprocess.run([str(ROOT / "tests" / "testenv" / "down.sh")], env=env, check=False)


def header(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    """Print and return where and how the figures were measured."""
    info = common.machine()
    info["kubernetes"] = cluster.server_version()
    try:
        info["commit"] = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["commit"] = "unknown"
    info["mode"] = args.mode
    info["date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    print("## taskjob benchmarks\n")
    print(
        f"- machine: {info['cpus']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB RAM, "
        f"kernel {info['kernel']}; load average {info['load_avg_1m']:.1f} at start (the CPUs are shared)"
    )
    print(
        f"- versions: Kubernetes {info['kubernetes']} (testenv), Python {info['python']}, kopf {info['kopf']}, "
        f"kubernetes client {info['kubernetes_client']}, pydantic {info['pydantic']}; taskjob commit {info['commit']}"
    )
    print(f"- mode: {info['mode']}; {info['date']}")
    return info


B5_RECORD = ROOT / "benchmarks" / "results" / "b5-latest.json"  # written by each B5 run (make bench-argo)


def record_b5(results: dict[str, Any], args: argparse.Namespace) -> None:
    """Keep the figures of this B5 run, so runs without the real node (make bench) can show them, dated."""
    B5_RECORD.parent.mkdir(parents=True, exist_ok=True)
    record = {"machine": results["machine"], "mode": args.mode, "qps": args.qps, "B5": results["B5"]}
    B5_RECORD.write_text(json.dumps(record, indent=1, default=str))
    log(f"B5 figures recorded in {B5_RECORD.relative_to(ROOT)}")


def print_recorded_b5() -> None:
    """Print the last recorded B5 (Argo side by side), labelled as not measured in this run; or say how to run it."""
    if not B5_RECORD.exists():
        print(
            "\n### B5 taskjob vs Argo Workflows: not measured in this run\n\n"
            "B5 needs the testenv's real node (real containers), which this private kwok testenv has not: "
            "run `make bench-argo`. docs/performance.md has the figures recorded so far."
        )
        return
    import b5_argo

    record = json.loads(B5_RECORD.read_text())
    machine = record.get("machine", {})
    print(
        f"\n### B5: NOT measured in this run. The last `make bench-argo` figures, recorded "
        f"{machine.get('date', '?')} at commit {machine.get('commit', '?')} ({B5_RECORD.relative_to(ROOT)})"
    )
    b5_argo._print(record["B5"], record.get("mode", "?"), float(record.get("qps", 0)))


def main() -> int:
    """Run the chosen benchmarks; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", dest="mode", action="store_const", const="quick", help="smaller sizes")
    sizes.add_argument("--full", dest="mode", action="store_const", const="full", help="full sizes, run to the end")
    parser.set_defaults(mode="default")
    parser.add_argument(
        "--only",
        default="B1,B2,B3,B4",
        help="subset of B1,B2,B3,B4,B5 (B5: --kubeconfig of a testenv with its real node)",
    )
    parser.add_argument("--kubeconfig", help="use this cluster instead of starting a private testenv")
    parser.add_argument("--testenv-dir", default=str(Path(tempfile.gettempdir()) / "taskjob-bench-testenv"))
    parser.add_argument("--keep-testenv", action="store_true", help="leave the private testenv running")
    parser.add_argument("--qps", type=float, default=200.0, help="operator --qps for B1 and B2 (its default: 200)")
    parser.add_argument(
        "--scale-qps", type=float, default=1000.0, help="operator --qps for B3 and B4 (high: they measure the loop)"
    )
    parser.add_argument("--b2-qps", help="client QPS settings B2 compares at (default: 50; with --full: 50,200)")
    parser.add_argument(
        "--b2-rounds", type=int, default=3,
        help="B2 at QPS >= 200: rounds of (raw, unthrottled, operator), order rotated, judged on the medians",
    )  # fmt: skip
    parser.add_argument("--b3-live", help="B3's live runs as shape:tasks:seconds,... (e.g. wide:10000:1800)")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--profile", type=Path, help="record py-spy profiles of each operator run into this directory")
    parser.add_argument(
        "--census", type=Path, help="B4: write tracemalloc heap censuses of the operator here (slows it: not for CPU)"
    )
    args = parser.parse_args()
    if args.census:
        args.census.mkdir(parents=True, exist_ok=True)
        common.CENSUS_DIR = args.census
    wanted = {name.strip().upper() for name in args.only.split(",") if name.strip()}
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        common.PROFILE_DIR = args.profile

    state = Path(args.testenv_dir)
    kubeconfig = args.kubeconfig or start_testenv(state)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    cluster: Cluster | None = None
    try:
        cluster = Cluster(kubeconfig)  # namespaces are left in place: see Cluster.namespace
        cluster.apply_crd()
        results["machine"] = header(cluster, args)
        if "B1" in wanted:
            import b1_latency

            results["B1"] = b1_latency.run(cluster, args.mode, args.qps)
        if "B2" in wanted:
            import b2_throughput

            # The operator's QPS, and 200 (with the unthrottled loop); at the default of 200, the old default 50.
            settings = args.b2_qps or (f"{args.qps:g},200" if args.qps != 200 else "50,200")
            results["B2"] = [
                b2_throughput.run(cluster, args.mode, float(q), args.b2_rounds) for q in settings.split(",")
            ]
        # B4 before B3: B3's runs stopped at their time budget leave Jobs the cluster is still finishing.
        if "B4" in wanted:
            import b4_cost

            results["B4"] = b4_cost.run(cluster, args.mode, args.scale_qps)
        if "B3" in wanted:
            import b3_scale

            results["B3"] = b3_scale.run(cluster, args.mode, args.scale_qps, args.b3_live)
        if "B5" in wanted:
            import b5_argo

            results["B5"] = b5_argo.run(cluster, args.mode, args.qps)
            record_b5(results, args)
        else:
            print_recorded_b5()
    finally:
        if args.kubeconfig:
            if cluster is not None:
                cluster.cleanup()
        elif not args.keep_testenv:
            stop_testenv(state)
    wall = time.perf_counter() - started
    results["wall_seconds"] = wall
    print(f"\nwall time {wall / 60:.1f} min; load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
        log(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
