"""Bad input gets one clear line on stderr naming the file and what is wrong, exit status 1,
and never a traceback."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from oracle import unpack_fixture

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def xlogtools(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xlogtools.cli", *args], capture_output=True,
                          text=True, timeout=120)


def unpack(major: int, dest: Path) -> list[Path]:
    return unpack_fixture(major, dest)


def assert_clean_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert_clean_error(xlogtools("dump", str(missing)), str(missing), "No such file")


def test_file_that_is_not_wal(tmp_path: Path) -> None:
    bogus = tmp_path / "000000010000000000000001"
    bogus.write_bytes(b"this is not WAL at all" * 50000)
    assert_clean_error(xlogtools("dump", str(bogus)), str(bogus), "not a WAL segment")
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    assert_clean_error(xlogtools("dump", str(other)), str(other), "not a WAL segment file")


def test_segment_larger_than_its_header_says(tmp_path: Path) -> None:
    segs = unpack(15, tmp_path / "wal")
    segs[1].write_bytes(segs[1].read_bytes() + bytes(8192))
    assert_clean_error(xlogtools("dump", str(tmp_path / "wal")), str(segs[1]), "larger than")


def test_truncated_segment_ends_the_dump_with_its_name(tmp_path: Path) -> None:
    segs = unpack(15, tmp_path / "wal")
    segs[1].write_bytes(segs[1].read_bytes()[:300000])
    proc = xlogtools("dump", str(tmp_path / "wal"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stdout.count("\n") > 1000  # everything before the damage is printed
    assert segs[1].name in proc.stderr and "truncated_segment" in proc.stderr


@pytest.mark.parametrize("size", [24, 30, 39, 40])
def test_segment_cut_inside_its_long_page_header(tmp_path: Path, size: int) -> None:
    """A segment file of 24-40 bytes (a short page header's worth, not a long one's): dump and
    locate end the WAL there, naming the file, and never unpack past the bytes."""
    segs = unpack(15, tmp_path / "wal")
    segs[1].write_bytes(segs[1].read_bytes()[:size])
    proc = xlogtools("dump", str(tmp_path / "wal"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f'could not read file "{segs[1].name}", offset 0: read {size} of 8192' in proc.stderr
    assert "truncated_segment" in proc.stderr and proc.stdout.count("\n") > 1000
    for args in ([], ["--quick"], ["--scan", "all"]):
        loc = xlogtools("locate", str(tmp_path / "wal"), *args)
        assert loc.returncode == 0 and "Traceback" not in loc.stderr, loc.stderr
        assert "ends because:    truncated_segment" in loc.stdout, loc.stdout
        assert segs[1].name in loc.stdout


@pytest.mark.skipif(not (FIXTURES / "pg16").exists(), reason="needs the pg16 fixture")
def test_two_clusters_in_one_directory(tmp_path: Path) -> None:
    a = unpack(15, tmp_path / "mixed")
    b_dir = unpack(16, tmp_path / "other")
    intruder = tmp_path / "mixed" / "000000010000000000000009"
    intruder.write_bytes(b_dir[0].read_bytes())
    proc = xlogtools("dump", str(tmp_path / "mixed"))
    assert_clean_error(proc, "different database system", str(intruder))
    assert a  # the directory held the first cluster's segments too


def test_bad_options_are_usage_errors() -> None:
    proc = xlogtools("dump", "-s", "zz/1", str(FIXTURES / "pg15" / "wal"))
    assert proc.returncode == 2 and "--start" in proc.stderr and "Traceback" not in proc.stderr
