#!/usr/bin/env python3
"""A git repository of realistic size for the server benchmarks (issue 15): by default
2,000 files, ~20 MB of working tree, 300 commits, built with `git fast-import` in a few
seconds. Deterministic (seeded), so two runs of the bench check out the same bytes.

  bench/make_repo.py DIR [--files 2000] [--mib 20] [--commits 300] [--workflow TEXT]

DIR becomes a non-bare repository on `main`; `--workflow` adds
`.github/workflows/ci.yml` with that text in the last commit. Used by
bench/serve_bench.py (`--repo realistic`) and by hand for the checkout figures.
"""

import argparse
import random
import subprocess
from pathlib import Path

WORDS = (
    "fn let mut impl struct enum match return self pub use crate mod async await where "
    "type trait const static loop while for in if else Some None Ok Err Result Option "
    "String Vec Box Arc clone into iter map filter collect unwrap expect"
).split()


def text_blob(rng, size):
    """Source-like text: words and lines, so it compresses the way code does (~3-4x)."""
    out, n = [], 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        line = " " * (4 * rng.randint(0, 3)) + line + f" // {rng.getrandbits(32):08x}\n"
        out.append(line)
        n += len(line)
    return "".join(out)[:size].encode()


def make(dest, files=2000, mib=20, commits=300, workflow=None, seed=15):
    rng = random.Random(seed)
    dest = Path(dest)
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True)
    # Sizes: mostly small files, a few large ones (a long tail, as in real trees).
    weights = [rng.paretovariate(1.2) for _ in range(files)]
    scale = mib * 1024 * 1024 / sum(weights)
    sizes = [max(64, int(w * scale)) for w in weights]
    paths = [
        f"src/{'mod%02d' % (i % 40)}/{'sub%d' % (i % 7)}/file{i:04d}.rs" for i in range(files)
    ]
    contents = {p: text_blob(rng, s) for p, s in zip(paths, sizes)}
    fi = subprocess.Popen(
        ["git", "-C", str(dest), "fast-import", "--quiet"], stdin=subprocess.PIPE
    )
    w = fi.stdin.write
    t0 = 1_700_000_000

    def commit(n, changes, message):
        w(f"commit refs/heads/main\ncommitter Bench <b@x> {t0 + n * 60} +0000\n".encode())
        msg = message.encode()
        w(f"data {len(msg)}\n".encode() + msg + b"\n")
        # Later commits on the branch continue from its tip (fast-import's rule).
        for path, data in changes:
            w(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
        w(b"\n")

    commit(0, contents.items(), "initial tree")
    for n in range(1, commits):
        changed = []
        for p in rng.sample(paths, 8):
            # Edit a slice of the file: small deltas, as real history has.
            old = contents[p]
            at = rng.randint(0, max(0, len(old) - 200))
            new = old[:at] + text_blob(rng, 200) + old[at + 200 :]
            contents[p] = new
            changed.append((p, new))
        if n == commits - 1 and workflow:
            changed.append((".github/workflows/ci.yml", workflow.encode()))
        commit(n, changed, f"change {n}")
    fi.stdin.close()
    if fi.wait() != 0:
        raise SystemExit("git fast-import failed")
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", "-f", "main"], check=True)
    return dest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--mib", type=float, default=20)
    ap.add_argument("--commits", type=int, default=300)
    ap.add_argument("--workflow")
    a = ap.parse_args()
    make(a.dir, a.files, a.mib, a.commits, a.workflow)


if __name__ == "__main__":
    main()
