"""Schema history on damaged input: catalog records whose data does not add up, page images
that do not restore, catalog pages failing their checksum (data checksums on) and a
truncated catalog file. Each is a warning naming what was skipped (the relations it touches
become schema_uncertain) or, where nothing can be read, a clear error; never a traceback."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from xlogtools.parse.api import open_wal
from xlogtools.replay.api import Replay
from xlogtools.replay.datadir_catalog import catalog_from_datadir
from xlogtools.replay.pgdata import DataDir
from xlogtools.replay.schema_history import SchemaHistory

from test_catalog_pgdata import file_digests

CONF = {"autovacuum": "off", "checkpoint_timeout": "1h", "max_wal_size": "1GB"}


@pytest.fixture(scope="module")
def stopped(pg_major: int, module_cluster_factory: Any) -> dict[str, Any]:
    c = module_cluster_factory(pg_major, name=f"histbad{pg_major}", conf=CONF,
                               data_checksums=True)
    c.execute("CREATE DATABASE app;")
    c.execute("CHECKPOINT;")
    redo = c.sql("SELECT redo_lsn FROM pg_control_checkpoint()")[0][0]
    c.execute("CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a VALUES (1, 'x'); "
              "ALTER TABLE a ADD COLUMN w int; UPDATE a SET w = 2; "
              "ALTER TABLE a RENAME TO b; UPDATE b SET v = 'y';", db="app")
    c.execute("CHECKPOINT;")
    c.stop()
    cat = catalog_from_datadir(c.datadir, "app")
    nodes = {o["name"]: o["relfilenode"] for o in cat.other_relations}
    return {"cluster": c, "redo": redo, "db": cat.database_oid, "nodes": nodes}


def _catalog_records(stopped: dict[str, Any]) -> list[Any]:
    c = stopped["cluster"]
    return list(open_wal([c.pg_wal], start=stopped["redo"]))


def test_damaged_catalog_records_are_warnings_and_uncertain(stopped: dict[str, Any]) -> None:
    """A pg_class update whose main data is cut short and a pg_attribute image that does not
    restore: the history warns with their LSNs, takes those pages from the files and marks
    the relations on them schema_uncertain; the replay still gives every row."""
    c = stopped["cluster"]
    cls, att = stopped["nodes"]["pg_catalog.pg_class"], stopped["nodes"]["pg_catalog.pg_attribute"]
    recs = _catalog_records(stopped)
    cut = imaged = None
    for rec in recs:
        rels = {b.rel for b in rec.blocks if b.db == stopped["db"]}
        if rec.rmid == 10 and cls in rels and rec.info & 0x70 == 0x20 and cut is None:
            rec.main_data_len = 3  # xl_heap_update is 14 bytes
            cut = rec.lsn
        if att in rels and imaged is None:
            for b in rec.blocks:
                if b.rel == att and b.has_image:
                    b.image_len = 7  # the image no longer decompresses / fills a page
                    imaged = rec.lsn
    assert cut is not None and imaged is not None
    hist = SchemaHistory(DataDir(c.datadir), recs, "app")
    text = "\n".join(hist.problems)
    assert f"record at {cut}" in text and f"at {imaged} is damaged" in text, text
    assert hist.lossy_pages()
    rows = list(Replay([c.pg_wal], hist, start=stopped["redo"]))
    assert [ch.op for ch in rows] == ["insert", "update", "update"]
    assert all(ch.schema_uncertain for ch in rows)
    assert [ch.new for ch in rows][-1] == {"id": "1", "v": "y", "w": "2"}


def test_checksum_failures_and_a_truncated_file_on_the_cli(stopped: dict[str, Any],
                                                           tmp_path: Path) -> None:
    """On a copy of the directory: a pg_attribute page with one flipped bit fails its checksum,
    is reported and skipped (the WAL's image of it stands in: the rows still decode, certain);
    a pg_type file cut to half a page stops the command with a message naming the file. The
    evidence itself is never touched."""
    c = stopped["cluster"]
    before = file_digests(c.datadir)
    copy = tmp_path / "copy"
    shutil.copytree(c.datadir, copy, symlinks=True)
    (copy / "postmaster.pid").unlink(missing_ok=True)
    base = copy / "base" / str(stopped["db"])
    att = base / str(stopped["nodes"]["pg_catalog.pg_attribute"])
    raw = bytearray(att.read_bytes())
    last = len(raw) - 8192
    raw[last + 8000] ^= 0x01
    att.write_bytes(bytes(raw))

    def replay(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "xlogtools.cli", "replay", "--pgdata",
                               str(copy), "--dbname", "app", str(c.pg_wal), "--start",
                               stopped["redo"], "--format", "jsonl", *extra],
                              capture_output=True, text=True)

    r = replay()
    assert r.returncode == 0, r.stderr
    assert "page verification failed" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stdout.count("\n") == 3 and '"schema_uncertain": true' not in r.stdout
    # garbage with a valid checksum in a pg_attribute page the WAL never images: a warning
    # naming the page, whose rows are not used (those of system catalogs: no row changes)
    from xlogtools.replay.pgdata import pg_checksum_page

    junk = bytearray(b"\xa5" * 8192)
    junk[8:10] = pg_checksum_page(bytes(junk), 0).to_bytes(2, "little")
    raw = bytearray(att.read_bytes())
    raw[:8192] = junk
    att.write_bytes(bytes(raw))
    r = replay()
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "invalid page in block 0" in r.stderr, r.stderr
    assert r.stdout.count("\n") == 3
    typ = base / str(stopped["nodes"]["pg_catalog.pg_type"])
    typ.write_bytes(typ.read_bytes()[:4096])
    r = replay()
    assert r.returncode == 1 and str(typ) in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert file_digests(c.datadir) == before
