#!/usr/bin/env python3
"""`gantry serve` figures, run by hand (never a test): issue 15 item 8.

  webhook accepted p50/p99    signed push deliveries, time to the 202
  deliveries/s (start nothing) signed deliveries of an event that starts nothing
                               (verify + dedupe + record), sequential, one connection each
  webhook -> first step p50/p99 a push whose one host step writes `date +%s.%N`
  idle RSS                     VmRSS of the server after start-up, and after the load

Usage: bench/serve_bench.py [--pushes 20] [--deliveries 500]
GANTRY_BIN chooses the binary (default $CARGO_TARGET_DIR/release/gantry, then debug).
Only the standard library and `git` are needed.
"""

import argparse
import hashlib
import hmac
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-hook-secret"
TOKEN = "bench-token"


def gantry_bin():
    if os.environ.get("GANTRY_BIN"):
        return os.environ["GANTRY_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for profile in ("release", "debug"):
        b = target / profile / "gantry"
        if b.exists():
            return str(b)
    sys.exit("no gantry binary: build it or set GANTRY_BIN")


def git(repo, *args):
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repo(tmp, marker_dir):
    work = tmp / "src"
    bare = tmp / "shop.git"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    wf = work / ".github" / "workflows"
    wf.mkdir(parents=True)
    (wf / "ci.yml").write_text(
        "name: CI\non: push\njobs:\n  mark:\n    runs-on: self-hosted\n    steps:\n"
        f"      - run: date +%s.%N > {marker_dir}/$GITHUB_SHA\n"
    )
    git(work, "add", ".")
    git(work, "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "init")
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return work, bare


def commit(work, bare, n):
    (work / "n.txt").write_text(str(n))
    git(work, "add", ".")
    git(work, "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", f"c{n}")
    git(work, "push", "-q", str(bare), "main")
    return git(work, "rev-parse", "HEAD")


def start_server(tmp, bare):
    cfg = tmp / "gantry-server.yml"
    cfg.write_text(
        f"""listen: 127.0.0.1:0
url: http://ci.bench
data: ./data
users:
  - {{ login: admin, token: "${{BENCH_TOKEN}}", role: admin }}
repositories:
  - name: acme/shop
    url: file://{bare}
    forge: github
    webhook_secret: "${{BENCH_SECRET}}"
labels:
  self-hosted: host
executor: {{ capacity: 4 }}
"""
    )
    env = dict(os.environ, BENCH_TOKEN=TOKEN, BENCH_SECRET=SECRET)
    proc = subprocess.Popen(
        [gantry_bin(), "serve", "--config", str(cfg)],
        cwd=tmp,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stderr:
        if "listening on http://" in line:
            addr = line.split("listening on http://")[1].split()[0]
            host, port = addr.rsplit(":", 1)
            return proc, host, int(port)
    sys.exit("gantry serve did not start")


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def post_hook(host, port, event, body):
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    conn = http.client.HTTPConnection(host, port, timeout=10)
    t0 = time.perf_counter()
    conn.request(
        "POST",
        "/hooks/github",
        body=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": f"sha256={sig}",
        },
    )
    resp = conn.getresponse()
    resp.read()
    dt = time.perf_counter() - t0
    conn.close()
    return resp.status, dt


def push_body(before, after):
    return json.dumps(
        {
            "ref": "refs/heads/main",
            "before": before,
            "after": after,
            "commits": [],
            "head_commit": {"id": after, "message": "bench"},
            "repository": {"full_name": "acme/shop", "name": "shop"},
            "pusher": {"name": "bench"},
            "sender": {"login": "bench"},
        }
    ).encode()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pushes", type=int, default=20)
    ap.add_argument("--deliveries", type=int, default=500)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        markers = tmp / "markers"
        markers.mkdir()
        work, bare = make_repo(tmp, markers)
        proc, host, port = start_server(tmp, bare)
        try:
            time.sleep(1.0)
            idle = rss_mib(proc.pid)

            # Deliveries that start nothing: verify + dedupe + record.
            body = json.dumps({"repository": {"full_name": "acme/shop"}, "action": "created"}).encode()
            t0 = time.perf_counter()
            for _ in range(a.deliveries):
                st, _ = post_hook(host, port, "star", body)
                assert st in (200, 202), st
            per_s = a.deliveries / (time.perf_counter() - t0)

            # Pushes: accept latency and webhook -> first step started.
            accept, first_step = [], []
            before = git(work, "rev-parse", "HEAD")
            for i in range(a.pushes):
                sha = commit(work, bare, i)
                sent = time.time()
                st, dt = post_hook(host, port, "push", push_body(before, sha))
                assert st == 202, st
                accept.append(dt)
                before = sha
                mark = markers / sha
                deadline = time.time() + 60
                while not (mark.exists() and mark.read_text().strip()):
                    if time.time() > deadline:
                        sys.exit(f"no step started for {sha}")
                    time.sleep(0.002)
                first_step.append(float(mark.read_text()) - sent)
            loaded = rss_mib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    ms = lambda x: f"{x * 1000:.1f} ms"
    print(f"binary                        {gantry_bin()}")
    print(f"webhook accepted              p50 {ms(statistics.median(accept))}  p99 {ms(pct(accept, 99))}  (n={len(accept)})")
    print(f"webhook -> first step started p50 {ms(statistics.median(first_step))}  p99 {ms(pct(first_step, 99))}  (n={len(first_step)})")
    print(f"deliveries/s, start nothing   {per_s:.0f}  (sequential, n={a.deliveries})")
    print(f"RSS idle / after load         {idle:.1f} MiB / {loaded:.1f} MiB")


if __name__ == "__main__":
    main()
