#!/usr/bin/env python3
"""`gantry serve` figures, run by hand (never a test): issue 15 item 8.

  webhook accepted p50/p99    signed push deliveries, time to the 202
  deliveries/s (start nothing) signed deliveries of an event that starts nothing
                               (verify + dedupe + record), all sent at once over --conns
                               keep-alive connections by an asyncio client (pre-signed
                               raw requests, so the client is not what is measured)
  static GET after each push   the same client's GET /-/ui.css right after each push's 202:
                               the floor of the accept measurement (client + machine)
  webhook -> first step p50/p99 a push whose one host step writes `date +%s.%N`
  idle RSS                     VmRSS of the server after start-up, and after the load

Usage: bench/serve_bench.py [--pushes 50] [--deliveries 5000] [--conns 16]
                           [--database postgres://…] [--repo one-file|realistic] [--write]
       bench/serve_bench.py --reads [--seconds 20] [--readers 4] [--rate 1000] [--repo …]

--repo realistic serves bench/make_repo.py's 2,000 files / 20 MB / 300 commits instead of
a one-file repository (the goals above were set with one file). --reads measures API and
UI read latency idle and under webhook load instead (bench/serve_reads.py).
GANTRY_BIN chooses the binary (default $CARGO_TARGET_DIR/release/gantry, then debug).
Only the standard library and `git` are needed.
"""

import argparse
import asyncio
import datetime
import hashlib
import hmac
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
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


def make_repo(tmp, marker_dir, realistic=False, log_lines=0):
    """The served repository: one workflow (a host step that writes `date +%s.%N` to a
    marker file, then `log_lines` lines of log 10 ms apart), in a one-file repository or,
    `realistic`, in bench/make_repo.py's 2,000 files / 20 MB / 300 commits."""
    work = tmp / "src"
    bare = tmp / "shop.git"
    workflow = (
        "name: CI\non: push\njobs:\n  mark:\n    runs-on: self-hosted\n    steps:\n"
        f"      - run: date +%s.%N > {marker_dir}/$GITHUB_SHA\n"
    )
    if log_lines:
        workflow += (
            f"      - run: for i in $(seq 1 {log_lines}); do echo \"log line $i of the job\"; "
            "sleep 0.01; done\n"
        )
    if realistic:
        sys.path.insert(0, str(ROOT / "bench"))
        import make_repo as big

        big.make(work, workflow=workflow)
    else:
        work.mkdir()
        git(work, "init", "-q", "-b", "main")
        wf = work / ".github" / "workflows"
        wf.mkdir(parents=True)
        (wf / "ci.yml").write_text(workflow)
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


def start_server(tmp, bare, database=None):
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
    args = [gantry_bin(), "serve", "--config", str(cfg)]
    if database:
        args += ["--database", database]
    proc = subprocess.Popen(
        args,
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


def get_static(host, port):
    """Time of a GET of the UI's stylesheet over a new connection: no store, no HMAC."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    t0 = time.perf_counter()
    conn.request("GET", "/-/ui.css")
    resp = conn.getresponse()
    resp.read()
    dt = time.perf_counter() - t0
    conn.close()
    return dt


def signed_request(host, port, event, body, delivery):
    """One raw HTTP/1.1 request (keep-alive), signed, ready to write."""
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    head = (
        f"POST /hooks/github HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\n"
        f"X-GitHub-Event: {event}\r\nX-GitHub-Delivery: {delivery}\r\n"
        f"X-Hub-Signature-256: sha256={sig}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _worker(host, port, requests, statuses):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for req in requests:
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            statuses.append(status)
    finally:
        writer.close()


async def _flood(host, port, requests, conns):
    statuses = []
    shares = [requests[i::conns] for i in range(conns)]
    await asyncio.gather(*(_worker(host, port, s, statuses) for s in shares))
    return statuses


def flood(host, port, requests, conns):
    """Sends every request over `conns` keep-alive connections at once (asyncio, raw
    sockets: no per-request client objects). Returns (statuses, wall s, client CPU s)."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    statuses = asyncio.run(_flood(host, port, requests, conns))
    return statuses, time.perf_counter() - t0, time.process_time() - cpu0


def cpu_s(pid):
    """User + system CPU seconds the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def first_step_after(work, bare, markers, host, port, before, n):
    """Pushes commit `n`, delivers its push; returns (sha, accept s, webhook->step s,
    static GET s)."""
    sha = commit(work, bare, n)
    sent = time.time()
    st, dt = post_hook(host, port, "push", push_body(before, sha))
    assert st == 202, st
    static = get_static(host, port)
    mark = markers / sha
    deadline = time.time() + 60
    while not (mark.exists() and mark.read_text().strip()):
        if time.time() > deadline:
            sys.exit(f"no step started for {sha}")
        time.sleep(0.001)
    return sha, dt, float(mark.read_text()) - sent, static


def machine():
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} × {cpu}; load average {os.getloadavg()[0]:.2f} at the start"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pushes", type=int, default=50)
    ap.add_argument("--deliveries", type=int, default=5000)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument(
        "--database",
        help="the run store's URL (postgres://…; default SQLite in the data directory); "
        "the database must be empty",
    )
    ap.add_argument(
        "--write",
        action="store_true",
        help="write bench/results/serve-<date>.md and the server section of docs/benchmarks.md",
    )
    ap.add_argument(
        "--repo",
        choices=["one-file", "realistic"],
        default="one-file",
        help="the served repository: one file, or bench/make_repo.py's 2,000 files / 20 MB",
    )
    ap.add_argument(
        "--reads",
        action="store_true",
        help="instead: API and UI read latency, idle and under webhook load (see reads())",
    )
    ap.add_argument("--seconds", type=float, default=20, help="--reads: length of each phase")
    ap.add_argument("--readers", type=int, default=4, help="--reads: concurrent readers")
    ap.add_argument("--rate", type=int, default=1000, help="--reads: deliveries/s of the load")
    a = ap.parse_args()
    if a.reads:
        sys.path.insert(0, str(ROOT / "bench"))
        import serve_reads

        return serve_reads.main(a)
    load = machine()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        markers = tmp / "markers"
        markers.mkdir()
        work, bare = make_repo(tmp, markers, realistic=a.repo == "realistic")
        proc, host, port = start_server(tmp, bare, a.database)
        # The server's stderr is drained so that a full pipe never blocks it.
        threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()
        try:
            time.sleep(1.0)
            idle = rss_mib(proc.pid)

            # Deliveries that start nothing: verify + dedupe + record, many at once.
            body = json.dumps({"repository": {"full_name": "acme/shop"}, "action": "created"}).encode()
            reqs = [signed_request(host, port, "star", body, uuid.uuid4()) for _ in range(a.deliveries)]
            server_cpu0 = cpu_s(proc.pid)
            statuses, wall, client_cpu = flood(host, port, reqs, a.conns)
            server_cpu = cpu_s(proc.pid) - server_cpu0
            bad = [x for x in statuses if x != 202]
            assert len(statuses) == a.deliveries and not bad, f"{len(bad)} answers not 202: {bad[:5]}"
            per_s = a.deliveries / wall

            # A redelivery starts nothing (checked, not timed).
            dup = reqs[0]
            st = asyncio.run(_flood(host, port, [dup], 1))[0]
            assert st == 200, f"a redelivery answered {st}"

            # Pushes: accept latency and webhook -> first step started. The first push
            # clones the mirror; it is reported on its own.
            before = git(work, "rev-parse", "HEAD")
            before, cold_accept, cold_step, _ = first_step_after(work, bare, markers, host, port, before, 0)
            accept, first_step, static = [], [], []
            for i in range(1, a.pushes + 1):
                before, dt, step, get = first_step_after(work, bare, markers, host, port, before, i)
                accept.append(dt)
                first_step.append(step)
                static.append(get)
            loaded = rss_mib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    ms = lambda x: f"{x * 1000:.1f} ms"
    ok = lambda b: "✅" if b else "❌"
    acc99, step99 = pct(accept, 99), pct(first_step, 99)
    rows = [
        ("webhook accepted (push, time to the 202)", "p99 ≤ 5 ms",
         f"p50 {ms(statistics.median(accept))}, p99 {ms(acc99)} (n={len(accept)})", ok(acc99 <= 0.005)),
        ("same client: GET `/-/ui.css` right after each push (the floor)", "—",
         f"p50 {ms(statistics.median(static))}, p99 {ms(pct(static, 99))} (n={len(static)})", ""),
        ("webhook → first step started (warm mirror)", "p99 ≤ 250 ms",
         f"p50 {ms(statistics.median(first_step))}, p99 {ms(step99)} (n={len(first_step)})", ok(step99 <= 0.25)),
        ("signed deliveries/s that start nothing", "≥ 1,000/s",
         f"{per_s:,.0f}/s (n={a.deliveries}, {a.conns} connections; server CPU {server_cpu:.2f} s, "
         f"client CPU {client_cpu:.2f} s of {wall:.2f} s wall)", ok(per_s >= 1000)),
        ("idle RSS", "≤ 30 MB", f"{idle:.1f} MiB idle, {loaded:.1f} MiB after the load", ok(idle * 1.048576 <= 30)),
    ]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"Measured {stamp} with `{gantry_bin()}`; machine: {load}; repository: {a.repo}.",
        "",
        f"First push (cold: clones the mirror): accepted in {ms(cold_accept)}, first step after {ms(cold_step)}.",
        "",
        "| measure | goal | result | met |",
        "|---|---|---|---|",
        *(f"| {m} | {g} | {r} | {k} |" for m, g, r, k in rows),
    ]
    text = "\n".join(out) + "\n"
    print(text)
    if a.write:
        write_results(text)


BEGIN, END = "<!-- serve_bench: begin -->", "<!-- serve_bench: end -->"


def write_results(table):
    """bench/results/serve-<date>.md, and docs/benchmarks.md's server section (between
    the markers; bench/harness.py keeps it when it rewrites the rest): the table, then the
    notes kept by hand in bench/serve_findings.md."""
    date = datetime.date.today().isoformat()
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"serve-{date}.md").write_text(f"# `gantry serve` — {date}\n\n{table}")
    findings = ROOT / "bench" / "serve_findings.md"
    notes = "\n" + findings.read_text() if findings.exists() else ""
    section = f"{BEGIN}\n## Server (`gantry serve`)\n\n{table}{notes}{END}"
    doc = ROOT / "docs" / "benchmarks.md"
    text = doc.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        at = text.find("\n## What we changed")
        at = len(text) if at < 0 else at + 1
        text = text[:at] + section + "\n\n" + text[at:]
    doc.write_text(text)
    print(f"wrote bench/results/serve-{date}.md and docs/benchmarks.md")


if __name__ == "__main__":
    main()
