"""Progress lines of replay and gap on a terminal's stderr (a real pty), none on a pipe."""
from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from oracle import FIXTURES, unpack_fixture
from xlogtools.replay.catalog import Catalog

BAR = re.compile(r"xlogtools (replay|gap \(primary\)): \[[#-]{24}\] +\d+\.\d% .* at "
                 r"[0-9A-F]+/[0-9A-F]+, [\d,]+ records, [\d,]+/s")


def run_with_tty_stderr(args: list[str]) -> tuple[int, str]:
    master, slave = pty.openpty()
    env = dict(os.environ, XLOGTOOLS_PROGRESS_AFTER="0")
    proc = subprocess.Popen([sys.executable, "-m", "xlogtools.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(), b"".join(chunks).decode(errors="replace")


def test_progress_on_a_terminal_only(tmp_path: Path) -> None:
    wal = tmp_path / "wal"
    unpack_fixture(15, wal)
    meta = (FIXTURES / "pg15" / "meta.json").read_text()
    sysid = re.search(r'"system_identifier": "(\d+)"', meta).group(1)  # type: ignore[union-attr]
    cat = tmp_path / "cat.json"
    Catalog(system_identifier=sysid, server_version_num=150000, block_size=8192,
            wal_segment_size=1 << 20, encoding="UTF8", database="postgres", database_oid=5,
            default_tablespace_oid=1663, relations=[], types={}).save(cat)
    rc, err = run_with_tty_stderr(["replay", str(wal), "--catalog", str(cat)])
    assert rc == 0, err
    assert any(BAR.search(x) for x in err.split("\r")), err[-2000:]
    rc, err = run_with_tty_stderr(["gap", "--primary", str(wal), "--standby", str(wal)])
    assert rc == 0, err
    assert "xlogtools gap (primary): [" in err, err[-2000:]
    # stderr a pipe: no progress line
    proc = subprocess.run([sys.executable, "-m", "xlogtools.cli", "replay", str(wal), "--catalog",
                           str(cat)], capture_output=True, text=True,
                          env=dict(os.environ, XLOGTOOLS_PROGRESS_AFTER="0"))
    assert proc.returncode == 0 and "[#" not in proc.stderr and "[-" not in proc.stderr
