"""catalog --pgdata on bad input: a directory that is not a data directory, a major we do not
support, missing, truncated or garbage catalog files, several databases and no --dbname: one
clear error naming the file, exit 1 (2 for a missing choice), never a traceback. With data
checksums on, a page that fails its checksum is reported and skipped; the intact copy reads
with no report at all (every page verified)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from xlogtools.replay.pgdata import DataDir, pg_checksum_page

CONF = {"autovacuum": "off"}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xlogtools.cli", "catalog", *args],
                          capture_output=True, text=True)


def assert_clean_error(r: subprocess.CompletedProcess[str], *needles: str, rc: int = 1) -> None:
    assert r.returncode == rc, r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


@pytest.fixture(scope="module")
def stopped(pg_major: int, module_cluster_factory: Any) -> Any:
    c = module_cluster_factory(pg_major, name=f"pgbad{pg_major}", conf=CONF,
                               data_checksums=True)
    c.execute("CREATE DATABASE app;")
    c.execute("CREATE TABLE victim (id int PRIMARY KEY, t text); "
              "INSERT INTO victim VALUES (1, 'a'); CHECKPOINT;", db="app")
    c.stop()
    return c


def copy_of(c: Any, tmp_path: Path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(c.datadir, dst, symlinks=True)
    return dst


def relfile(data: Path, db: str, relname: str) -> Path:
    """The file of a relation, by the catalog of the intact directory."""
    r = cli("--pgdata", str(data), "-d", db, "-o", "-")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    for rel in doc["relations"]:
        if rel["name"] == relname:
            return data / "base" / str(doc["database_oid"]) / str(rel["relfilenode"])
    for o in doc["other_relations"]:
        if o["name"] == relname:
            return data / "base" / str(doc["database_oid"]) / str(o["relfilenode"])
    raise AssertionError(relname)


def test_not_a_data_directory(tmp_path: Path) -> None:
    (tmp_path / "some.txt").write_text("x")
    assert_clean_error(cli("--pgdata", str(tmp_path), "-o", str(tmp_path / "c.json")),
                       "is not a PostgreSQL data directory", str(tmp_path))
    assert_clean_error(cli("--pgdata", str(tmp_path / "nope"), "-o", str(tmp_path / "c.json")),
                       "is not a directory")
    assert not (tmp_path / "c.json").exists()


def test_unsupported_major(stopped: Any, tmp_path: Path) -> None:
    data = copy_of(stopped, tmp_path)
    (data / "PG_VERSION").write_text("12\n")
    assert_clean_error(cli("--pgdata", str(data), "-d", "app", "-o", "-"),
                       str(data / "PG_VERSION"), "PostgreSQL '12'", "13-18")


def test_several_databases_need_a_choice(stopped: Any, tmp_path: Path) -> None:
    data = copy_of(stopped, tmp_path)
    r = cli("--pgdata", str(data), "-o", "-")
    assert r.returncode == 0, r.stderr  # one user database: it is the default
    assert json.loads(r.stdout)["database"] == "app"
    assert_clean_error(cli("--pgdata", str(data), "-d", "nosuch", "-o", "-"),
                       "'nosuch' is not in pg_database", "app")


def test_missing_truncated_and_garbage_catalog_files(stopped: Any, tmp_path: Path) -> None:
    data = copy_of(stopped, tmp_path)
    pg_class = relfile(data, "app", "pg_catalog.pg_class")
    good = pg_class.read_bytes()
    pg_class.write_bytes(good[:5000])
    assert_clean_error(cli("--pgdata", str(data), "-d", "app", "-o", "-"),
                       str(pg_class), "not a multiple of the block size")
    pg_class.unlink()
    assert_clean_error(cli("--pgdata", str(data), "-d", "app", "-o", "-"),
                       str(pg_class), "missing")
    # garbage that carries a valid checksum (as on a cluster without checksums): the page
    # header is refused, naming the file and block
    junk = bytearray(bytes(range(256)) * 32)
    junk[8:10] = pg_checksum_page(bytes(junk), 0).to_bytes(2, "little")
    pg_class.write_bytes(bytes(junk) + good[8192:])
    assert_clean_error(cli("--pgdata", str(data), "-d", "app", "-o", "-"),
                       str(pg_class), "block 0")
    relmap = data / "global" / "pg_filenode.map"
    relmap.write_bytes(relmap.read_bytes()[:100] + b"\xff" + relmap.read_bytes()[101:])
    assert_clean_error(cli("--pgdata", str(data), "-d", "app", "-o", "-"),
                       str(relmap), "incorrect checksum")
    control = data / "global" / "pg_control"
    control.write_bytes(b"\0" * 8192)
    assert_clean_error(cli("--pgdata", str(data), "-d", "app", "-o", "-"),
                       str(control), "checksum")


def test_page_with_bad_checksum_is_reported_and_skipped(stopped: Any, tmp_path: Path) -> None:
    data = copy_of(stopped, tmp_path)
    dd = DataDir(data)
    assert dd.checksums
    r = cli("--pgdata", str(data), "-d", "app", "-o", str(tmp_path / "good.json"))
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr  # every page verified
    good = json.loads((tmp_path / "good.json").read_text())
    assert "victim" in [rel["name"] for rel in good["relations"]]
    # flip one byte in the page of pg_class that holds victim's row
    pg_class = relfile(data, "app", "pg_catalog.pg_class")
    raw = bytearray(pg_class.read_bytes())
    at = raw.index(b"victim\0")
    raw[at + 1] ^= 0x20  # 'vIctim': a change only the checksum can tell
    pg_class.write_bytes(bytes(raw))
    r = cli("--pgdata", str(data), "-d", "app", "-o", str(tmp_path / "bad.json"))
    assert r.returncode == 0, r.stderr
    blk = at // 8192
    assert f"page verification failed in {pg_class} block {blk}" in r.stderr
    assert "page skipped" in r.stderr and "Traceback" not in r.stderr
    names = [rel["name"] for rel in json.loads((tmp_path / "bad.json").read_text())["relations"]]
    assert "victim" not in names and "vIctim" not in names
