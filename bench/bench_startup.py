#!/usr/bin/env python3
"""Start-up: `xlogtools dump -n 10 SEGMENT` (a 16 MB segment) as a whole process, beside
`pg_waldump -n 10` of the same segment and the bare interpreter (`python -c pass`).

    python bench/bench_startup.py [--major 15] [--runs 15]

xlogtools is measured as users install it: a regular (not editable) install into a venv of
its own under $XLOGTOOLS_BENCH_DIR (made once, remade when the sources change), so the byte
code is compiled at install time, as pip does. (An editable install adds its import hook's
own start-up, and PYTHONDONTWRITEBYTECODE=1 makes every run compile every module: neither is
what an installed tool does.) Medians of --runs runs, the tools interleaved.
Not a test: nothing is asserted.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import BENCH_DIR, ROOT, pgbench_wal, pgbin


def _sources_digest() -> str:
    h = hashlib.sha1()
    for p in sorted((ROOT / "xlogtools").rglob("*")):
        if p.suffix in (".py", ".c", ".h") and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(ROOT)).encode())
            h.update(p.read_bytes())
    for name in ("pyproject.toml", "setup.py"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def installed_python() -> Path:
    """A venv with xlogtools installed from this tree (not editable)."""
    venv = BENCH_DIR / "startup-venv"
    stamp = venv / "xlogtools-sources.sha1"
    digest = _sources_digest()
    py = venv / "bin" / "python"
    if stamp.exists() and stamp.read_text() == digest and py.exists():
        return py
    if not py.exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    print("installing xlogtools into", venv, "...", flush=True)
    # a copy of the tree, so that the build leaves nothing in the checkout
    src = BENCH_DIR / "startup-src"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "*.so", "build", "*.egg-info", "fixtures", "tests", "bench"))
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--upgrade", "--force-reinstall",
                    "--no-deps", str(src)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(src)], check=True)  # the deps
    shutil.rmtree(src, ignore_errors=True)
    stamp.write_text(digest)
    return py


def wall(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--major", type=int, default=15)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    wal = pgbench_wal(args.major, 200)  # the WAL of bench_dump.py
    seg = sorted(p for p in wal.iterdir() if len(p.name) == 24)[1]
    py = installed_python()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    waldump = str(pgbin.tool(args.major, "pg_waldump"))
    runs = {
        "python -c pass (the interpreter alone)": [str(py), "-c", "pass"],
        "pg_waldump -n 10 SEGMENT": [waldump, "-n", "10", str(seg)],
        "xlogtools dump -n 10 SEGMENT": [str(py.parent / "xlogtools"), "dump", "-n", "10",
                                         str(seg)],
        "xlogtools dump -n 10 --format waldump SEGMENT": [
            str(py.parent / "xlogtools"), "dump", "-n", "10", "--format", "waldump", str(seg)],
    }
    for argv in runs.values():  # warm the page cache
        wall(argv, env)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.runs):
        for name, argv in runs.items():
            times[name].append(wall(argv, env))
    print(f"start-up on a {seg.stat().st_size >> 20} MB segment (PostgreSQL {args.major}), "
          f"medians of {args.runs} runs, interleaved (target: xlogtools < 150 ms)")
    for name, ts in times.items():
        print(f"  {name:48s} {statistics.median(ts) * 1000:7.1f} ms  "
              f"(min {min(ts) * 1000:6.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
