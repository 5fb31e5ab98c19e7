"""`bench/serve_bench.py --reads`: API and UI read latency of `gantry serve`, idle and
while webhooks arrive (issue 15, the read pool).

Three runs are pushed and finished first (their job logs ~`--log-lines` lines), so the
reads have something to read. Then two phases of `--seconds` each:

  idle   `--readers` threads, each on its own keep-alive connection, GET in turn the runs
         list (API, 30 a page), one job's log (API), the UI's runs page and the UI's job
         page, one request at a time each, and time every answer;
  load   the same readers while a second process sends `--rate` signed `star` deliveries
         a second (recorded by the store, start nothing) over 8 connections and a push
         every 0.5 s, each of whose runs writes 200 log lines 10 ms apart through the event
         recorder: the writes the one writer connection takes.

Prints p50/p99 per read and phase, and what the load achieved.
"""

import asyncio
import http.client
import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import serve_bench as sb

LOG_LINES = 200


def api(host, port, path):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", path, headers={"Authorization": f"Bearer {sb.TOKEN}"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 200, (path, resp.status, body[:200])
    return json.loads(body)


def wait_completed(host, port, n, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = api(host, port, "/api/v3/repos/acme/shop/actions/runs?status=completed")
        if runs["total_count"] >= n:
            return runs["workflow_runs"]
        time.sleep(0.2)
    sys.exit(f"fewer than {n} runs completed in {timeout} s")


def reader(host, port, targets, until, out, errors):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    auth = {"Authorization": f"Bearer {sb.TOKEN}"}
    i = 0
    while time.perf_counter() < until:
        name, path = targets[i % len(targets)]
        i += 1
        t0 = time.perf_counter()
        conn.request("GET", path, headers=auth)
        resp = conn.getresponse()
        resp.read()
        dt = time.perf_counter() - t0
        if resp.status != 200:
            errors.append((name, resp.status))
        out.setdefault(name, []).append(dt)


def read_phase(host, port, targets, seconds, readers):
    out, errors = {}, []
    until = time.perf_counter() + seconds
    outs = [{} for _ in range(readers)]
    threads = [
        threading.Thread(target=reader, args=(host, port, targets, until, o, errors))
        for o in outs
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for o in outs:
        for k, v in o.items():
            out.setdefault(k, []).extend(v)
    assert not errors, errors[:5]
    return out


async def _paced(host, port, rate, conns, stop, sent):
    """`rate` signed deliveries a second over `conns` keep-alive connections, until `stop`."""
    body = json.dumps({"repository": {"full_name": "acme/shop"}, "action": "created"}).encode()

    async def one(k):
        reader, writer = await asyncio.open_connection(host, port)
        gap = conns / rate
        nxt = time.perf_counter()
        while not stop.is_set():
            writer.write(sb.signed_request(host, port, "star", body, uuid.uuid4()))
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            assert int(head.split(b" ", 2)[1]) == 202
            sent[k] += 1
            nxt += gap
            await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
        writer.close()

    await asyncio.gather(*(one(k) for k in range(conns)))


def load(host, port, work, bare, rate, stop, result):
    """The write load (a process of its own, so the readers' timings are not the GIL's)."""
    sent = [0] * 8
    pushes = [0]

    def pusher():
        before = sb.git(work, "rev-parse", "HEAD")
        n = 1000
        while not stop.is_set():
            sha = sb.commit(work, bare, n)
            st, _ = sb.post_hook(host, port, "push", sb.push_body(before, sha))
            assert st == 202, st
            before, n = sha, n + 1
            pushes[0] += 1
            stop.wait(0.5)

    t = threading.Thread(target=pusher)
    t.start()
    t0 = time.perf_counter()
    asyncio.run(_paced(host, port, rate, 8, stop, sent))
    t.join()
    result.put((sum(sent), pushes[0], time.perf_counter() - t0))


def pct_ms(xs, p):
    return sb.pct(xs, p) * 1000


def main(a):
    load_avg = sb.machine()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        markers = tmp / "markers"
        markers.mkdir()
        work, bare = sb.make_repo(
            tmp, markers, realistic=a.repo == "realistic", log_lines=LOG_LINES
        )
        proc, host, port = sb.start_server(tmp, bare, a.database)
        threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()
        try:
            before = sb.git(work, "rev-parse", "HEAD")
            for i in range(3):
                sha = sb.commit(work, bare, i)
                st, _ = sb.post_hook(host, port, "push", sb.push_body(before, sha))
                assert st == 202, st
                before = sha
            runs = wait_completed(host, port, 3)
            run = runs[0]["id"]
            job = api(host, port, f"/api/v3/repos/acme/shop/actions/runs/{run}/jobs")["jobs"][0]["id"]
            targets = [
                ("API runs list", "/api/v3/repos/acme/shop/actions/runs?per_page=30"),
                ("API job log", f"/api/v3/repos/acme/shop/actions/jobs/{job}/logs"),
                ("UI runs page", "/acme/shop/actions"),
                ("UI job page", f"/acme/shop/actions/runs/{run}/job/{job}"),
            ]
            idle = read_phase(host, port, targets, a.seconds, a.readers)
            ctx = multiprocessing.get_context("fork")
            stop, result = ctx.Event(), ctx.Queue()
            p = ctx.Process(target=load, args=(host, port, work, bare, a.rate, stop, result))
            p.start()
            time.sleep(2.0)  # the load's first runs under way
            loaded = read_phase(host, port, targets, a.seconds, a.readers)
            stop.set()
            delivered, pushes, wall = result.get(timeout=60)
            p.join()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        f"Measured {stamp} with `{sb.gantry_bin()}`; machine: {load_avg}; repository: {a.repo}.",
        f"Load: {delivered / wall:,.0f} deliveries/s (asked {a.rate}), {pushes} pushes "
        f"in {wall:.1f} s; {a.readers} readers, {a.seconds:.0f} s a phase.",
        "",
        "| read | idle p50 | idle p99 | under load p50 | under load p99 | n idle / load |",
        "|---|---|---|---|---|---|",
    ]
    for name, _ in targets:
        i, l = idle[name], loaded[name]
        lines.append(
            f"| {name} | {statistics.median(i) * 1000:.2f} ms | {pct_ms(i, 99):.2f} ms | "
            f"{statistics.median(l) * 1000:.2f} ms | {pct_ms(l, 99):.2f} ms | {len(i)} / {len(l)} |"
        )
    print("\n".join(lines))
