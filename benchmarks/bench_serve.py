"""Benchmark `gvs serve` against issue 13's targets, on a real server (a subprocess) with a real bundle:

1. a 5-s clip's verdict in the job's JSON (what the page polls) <= 8 s after the upload starts, models warm;
2. GET / and GET /api/jobs/ID <= 200 ms while a job runs (median, 95th percentile and maximum);
3. 4 concurrent uploads are queued and all finish;
4. 20 uploads in a row: the server's RSS after the last within 10 % of its RSS after the first.

    .venv/bin/python benchmarks/bench_serve.py --model runs/demo/bundle [--clip Val/1_1.mp4] [--uploads 20]
                                               [--concurrent 4]

The server stores its jobs in a temporary folder (GVS_HOME too, so the user's files are left alone), quick reports
as `gvs serve` makes by default. The job page polls the JSON every 0.7 s, so the page shows the verdict at most
0.7 s after the JSON. "load average" above ~2 means other jobs shared the 2 cores while it ran.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GVS_SHARED") or REPO.parent / "shared")
TARGETS = {"verdict_s": 8.0, "response_ms": 200.0, "rss_change": 0.10}
POLL_S = 0.05


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model: str, home: Path, port: int, queue: int) -> subprocess.Popen:
    """`gvs serve` in a subprocess (its output in home/server.log)."""
    env = dict(os.environ, GVS_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2")
    env.setdefault("GVS_MODEL_DIR", str(SHARED / "models"))
    command = [sys.executable, "-m", "gvs.cli", "serve", "--model", model, "--port", str(port), "--queue", str(queue)]
    log = (home / "server.log").open("w")
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(client: httpx.Client, server: subprocess.Popen, home: Path, timeout: float = 300) -> float:
    """Seconds until the server answers and its models are loaded."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if server.poll() is not None:
            sys.exit(f"the server stopped (exit {server.returncode}); see {home / 'server.log'}")
        try:
            if client.get("/api/health").json()["ready"]:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit(f"the server was not ready after {timeout:.0f} s; see {home / 'server.log'}")


def submit(client: httpx.Client, clip: Path) -> str:
    with clip.open("rb") as handle:
        answer = client.post("/api/jobs", files={"file": (clip.name, handle, "video/mp4")})
    answer.raise_for_status()
    return answer.json()["id"]


def wait_for(client: httpx.Client, job_id: str, field: str = "finished", timeout: float = 600) -> dict:
    """The job's JSON once it has a verdict (``field`` "verdict") or has finished (done or failed)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("done", "failed") or (field == "verdict" and job["verdict"]):
            return job
        time.sleep(POLL_S)
    sys.exit(f"job {job_id} did not finish in {timeout:.0f} s")


def latencies_during(client: httpx.Client, paths: list[str], stop: threading.Event) -> dict[str, list[float]]:
    """Milliseconds of each GET of ``paths``, one round every 0.1 s until ``stop``."""
    times: dict[str, list[float]] = {path: [] for path in paths}
    while not stop.is_set():
        for path in paths:
            begin = time.perf_counter()
            client.get(path).raise_for_status()
            times[path].append(1000 * (time.perf_counter() - begin))
        time.sleep(0.1)
    return times


def verdict_and_latency(client: httpx.Client, base: str, clip: Path) -> None:
    """Targets 1 and 2: one upload timed to its verdict; page and API latency sampled until the job ends."""
    begin = time.perf_counter()
    job_id = submit(client, clip)
    stop = threading.Event()
    result: dict = {}
    with httpx.Client(base_url=base, timeout=30) as other:
        sampler = threading.Thread(
            target=lambda: result.update(latencies_during(other, ["/", f"/api/jobs/{job_id}"], stop))
        )
        sampler.start()
        job = wait_for(client, job_id, "verdict")
        to_verdict = time.perf_counter() - begin
        done = wait_for(client, job_id)
        stop.set()
        sampler.join()
    verdict = "meets" if to_verdict <= TARGETS["verdict_s"] else "MISSES"
    print(f"1. verdict {job['verdict']} in the JSON {to_verdict:.2f} s after the upload started ({verdict} <= 8 s);")
    print(f"   the whole job (quick report included): {done['seconds']['total']:.1f} s, status {done['status']}")
    for path, times in result.items():
        name = "GET /api/jobs/ID" if path.startswith("/api") else f"GET {path}"
        p95 = statistics.quantiles(times, n=20)[-1] if len(times) >= 2 else times[0]
        verdict = "meets" if p95 <= TARGETS["response_ms"] else "MISSES"
        print(
            f"2. {name:16s} during the job: median {statistics.median(times):.1f} ms, 95th percentile {p95:.1f} ms, "
            f"max {max(times):.1f} ms over {len(times)} requests ({verdict} <= 200 ms at the 95th percentile)"
        )


def concurrent_uploads(client: httpx.Client, base: str, clip: Path, count: int) -> None:
    """Target 3: ``count`` uploads at once; each one's place in the queue and when it finished."""
    ids: list[str] = []

    def send() -> None:
        with httpx.Client(base_url=base, timeout=60) as own:
            ids.append(submit(own, clip))

    threads = [threading.Thread(target=send) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    places = [client.get(f"/api/jobs/{i}").json()["position"] for i in ids]
    jobs = [wait_for(client, i) for i in ids]
    finished = sum(j["status"] == "done" for j in jobs)
    totals = ", ".join(f"{j['seconds']['total']:.0f}" for j in jobs)
    print(
        f"3. {count} concurrent uploads: places in the queue {places} (0 = running); {finished} of {count} done; "
        f"seconds from upload to done: {totals}"
    )


def uploads_in_a_row(client: httpx.Client, clip: Path, count: int, pid: int) -> None:
    """Target 4: ``count`` uploads one after the other; the server's RSS after each."""
    process = psutil.Process(pid)
    rss = []
    for _ in range(count):
        job = wait_for(client, submit(client, clip))
        if job["status"] != "done":
            print(f"   a job failed: {job['error']}")
        rss.append(process.memory_info().rss / 2**20)
    change = (rss[-1] - rss[0]) / rss[0]
    verdict = "meets" if abs(change) <= TARGETS["rss_change"] else "MISSES"
    print(
        f"4. {count} uploads in a row: RSS after the first {rss[0]:.0f} MiB, after the last {rss[-1]:.0f} MiB "
        f"({change:+.1%}; {verdict} within 10 %), highest {max(rss):.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="bundle folder or .zip, or a RUNS folder")
    parser.add_argument("--clip", default="Val/1_1.mp4", help="clip under $GVS_SHARED/data/vgaf (default Val/1_1)")
    parser.add_argument("--uploads", type=int, default=20, help="uploads in a row for the memory check (20)")
    parser.add_argument("--concurrent", type=int, default=4, help="uploads sent at once (4)")
    args = parser.parse_args()
    clip = SHARED / "data" / "vgaf" / args.clip
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as folder:
        home, port = Path(folder), free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(args.model, home, port, max(16, args.concurrent))
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                cold = wait_ready(client, server, home)
                warm_up = wait_for(client, submit(client, clip))
                print(
                    f"clip {clip.name}; server ready (models loaded) {cold:.1f} s after start; first job (builds the "
                    f"graphs) {warm_up['seconds']['total']:.1f} s; load average {os.getloadavg()[0]:.2f}"
                )
                verdict_and_latency(client, base, clip)
                concurrent_uploads(client, base, clip, args.concurrent)
                uploads_in_a_row(client, clip, args.uploads, server.pid)
        finally:
            server.terminate()
            server.wait(30)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
