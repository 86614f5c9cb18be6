"""Throwaway PostgreSQL clusters on real server binaries, for tests.

Why it looks the way it does:

* Servers refuse to run as root, and CI runs as root: every server-side program (initdb, pg_ctl,
  postgres, psql, pg_basebackup, pgbench) runs as the ``postgres`` OS user then
  (``pgbin.server_user()``), and the directories we create are chowned to it.  Root can still
  read the WAL files afterwards.  The cluster's base directory must be reachable by that user,
  so pytest's ``tmp_path`` (under a 0700 root directory) will not do: use a 0755 directory.
* A cluster only listens on 127.0.0.1 and on a unix socket in its own directory, on a port found
  by binding port 0 (retried when the server still loses a race for it), so parallel test runs
  and a system PostgreSQL never collide.
* fsync stays on: tests crash servers and look at what survived.  ``crash()`` freezes every
  process of the cluster with SIGSTOP before SIGKILL, so no survivor (walwriter, checkpointer,
  a backend noticing postmaster death) writes anything after the moment of the crash.
* Every subprocess has a timeout; every failure raises ``ClusterError`` whose message ends with
  the tail of the server log, which is where the real cause usually is.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..errors import XlogError
from . import pgbin
from .pgbin import Unavailable

__all__ = ["Cluster", "ClusterError", "Unavailable", "make_standby", "wait_until"]

SUPERUSER = "postgres"
HOST = "127.0.0.1"
_NULL = f"<NULL:{secrets.token_hex(8)}>"  # psql's NULL marker; random so data cannot forge it
_COMPRESSION = ("off", "on", "pglz", "lz4", "zstd")
_T = TypeVar("_T")


class ClusterError(XlogError, RuntimeError):
    """A cluster operation failed; the message carries stderr and the server log's tail."""

    def __init__(self, message: str, returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


def wait_until(fn: Callable[[], _T], timeout: float = 30.0, interval: float = 0.1,
               what: str = "condition") -> _T:
    """Poll ``fn`` until it returns something truthy (returned); TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {got!r})")
        time.sleep(interval)


def _proc_state(pid: int) -> tuple[str, int] | None:
    """(state letter, ppid) of a process from /proc, or None when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the command name may contain spaces/parens
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    """True when the process exists and is not a zombie.

    Zombies count as dead: an init that never reaps (some containers) leaves them forever.
    """
    st = _proc_state(pid)
    return st is not None and st[0] not in ("Z", "X")


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_state(int(entry))
            if st is not None:
                children.setdefault(st[1], []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for kid in children.get(todo.pop(), []):
            if kid not in found:
                found.add(kid)
                todo.append(kid)
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _conf_value(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


class Cluster:
    """One PostgreSQL data directory plus the server running on it.

    ``base`` is the cluster's own directory (created; it holds ``data/``, ``server.log`` and the
    unix socket).  Nothing happens until ``init()`` (or ``make_standby``) and ``start()``.
    ``wal_compression`` takes off|pglz|lz4|zstd; 13 and 14 only know off/on, so pglz maps to on
    there and lz4/zstd raise Unavailable.  ``data_checksums`` None keeps the major's default
    (off before 18, on in 18).  ``conf`` is extra postgresql.conf settings and wins over ours.
    """

    def __init__(self, major: int, base: str | os.PathLike[str], *, wal_level: str = "replica",
                 wal_segsize_mb: int = 1, wal_compression: str = "off",
                 full_page_writes: bool = True, data_checksums: bool | None = None,
                 conf: Mapping[str, object] | None = None, name: str | None = None) -> None:
        if wal_compression not in _COMPRESSION:
            raise ValueError(f"wal_compression must be one of {_COMPRESSION}")
        if major < 15 and wal_compression in ("lz4", "zstd"):
            raise Unavailable(f"PostgreSQL {major} has no wal_compression={wal_compression}")
        self.major = major
        self.base = Path(base).absolute()
        self.name = name or self.base.name
        self.wal_level = wal_level
        self.wal_segsize_mb = wal_segsize_mb
        self.wal_compression = wal_compression
        self.full_page_writes = full_page_writes
        self.data_checksums = data_checksums
        self.conf: dict[str, object] = dict(conf or {})
        self.bindir: Path = pgbin.bindir(major)  # raises Unavailable(reason)
        self._user = pgbin.server_user()
        self.port = 0
        self._sockdir: Path | None = None

    # -- where things are ----------------------------------------------------------------------
    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def pg_wal(self) -> Path:
        return self.datadir / "pg_wal"

    @property
    def host(self) -> str:
        return HOST

    @property
    def logfile(self) -> Path:
        return self.base / "server.log"

    @property
    def conninfo(self) -> str:
        return f"host={HOST} port={self.port} user={SUPERUSER} dbname=postgres"

    def tool(self, name: str) -> Path:
        """A program for this major (client tools may come from another major, see pgbin.tool)."""
        return pgbin.tool(self.major, name)

    def log_text(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __repr__(self) -> str:
        return f"<Cluster {self.name} pg{self.major} port={self.port} {self.base}>"

    # -- running programs ----------------------------------------------------------------------
    def _mkdir(self, path: Path, mode: int = 0o755) -> None:
        """Create ``path`` owned by the server user, after checking that user can reach it."""
        if self._user is not None:
            for anc in path.parents:
                st = anc.stat() if anc.exists() else None
                if st and not (st.st_mode & 0o001 or st.st_uid == self._user.pw_uid):
                    raise ClusterError(f"{anc} (mode {oct(st.st_mode & 0o777)}) is not reachable "
                                       f"by the {self._user.pw_name!r} OS user the server runs "
                                       "as; put clusters under a 0755 directory (e.g. in /tmp)")
        path.mkdir(parents=True, exist_ok=True, mode=mode)
        path.chmod(mode)
        self._chown(path)

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C", HOME=str(self.base), PGCLIENTENCODING="UTF8",
                   PGCONNECT_TIMEOUT="10")
        return env

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def _fail(self, what: str, rc: int | None, out: str, err: str) -> ClusterError:
        detail = (err.strip() or out.strip())[-2000:]
        return ClusterError(f"{self.name} (pg{self.major}): {what} failed (exit {rc}): {detail}\n"
                            f"--- server log tail ({self.logfile}) ---\n{self.log_tail()}",
                            rc, err)

    def run(self, cmd: Sequence[str | os.PathLike[str]], *, input: str | None = None,
            timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a program as the server user (when root), with a clean PG* environment."""
        argv = [str(c) for c in cmd]
        kw: dict[str, Any] = {}
        if self._user is not None:
            kw = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        try:
            res = subprocess.run(argv, input=input, capture_output=True, text=True,
                                 encoding="utf-8", errors="replace", timeout=timeout,
                                 cwd=self.base, env=pgbin.runtime_env(argv[0], self._env()),
                                 **kw)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
            raise self._fail(f"{Path(argv[0]).name} (timeout {timeout}s)", None, out,
                             " ".join(argv)) from None
        if check and res.returncode != 0:
            raise self._fail(" ".join(argv), res.returncode, res.stdout, res.stderr)
        return res

    # -- lifecycle -----------------------------------------------------------------------------
    def init(self) -> Cluster:
        """initdb with trust auth, C locale, UTF8 and the requested WAL segment size."""
        self._mkdir(self.base)
        cmd: list[str | os.PathLike[str]] = [
            self.bindir / "initdb", "-D", self.datadir, "-U", SUPERUSER, "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync", f"--wal-segsize={self.wal_segsize_mb}"]
        if self.data_checksums:
            cmd.append("--data-checksums")
        elif self.data_checksums is False and self.major >= 18:
            cmd.append("--no-data-checksums")
        self.run(cmd, timeout=180)
        with open(self.datadir / "postgresql.conf", "a") as fh:
            fh.write("\n# settings of xlogtools.testing.cluster, rewritten at every start()\n"
                     "include 'xlogtools.conf'\n")
        return self

    def settings(self) -> dict[str, object]:
        """The postgresql.conf settings written at start(); ``conf`` overrides ours."""
        comp = self.wal_compression
        if self.major < 15 and comp == "pglz":
            comp = "on"  # 13/14: a boolean that means pglz
        minimal = self.wal_level == "minimal"
        s: dict[str, object] = {
            "listen_addresses": HOST, "port": self.port,
            "unix_socket_directories": str(self._socket_dir()),
            "wal_level": self.wal_level, "wal_compression": comp,
            "full_page_writes": self.full_page_writes,
            "fsync": True,  # we test crashes: never rely on fsync=off
            "max_wal_senders": 0 if minimal else 10,  # minimal WAL forbids senders
            "max_replication_slots": 10,
            "wal_keep_size": "256MB",  # since 13 (wal_keep_segments before); our oldest is 13
            "hot_standby": True, "logging_collector": False,
        }
        s.update(self.conf)
        return s

    def _socket_dir(self) -> Path:
        # Unix socket paths are limited to ~107 bytes; deep test directories exceed that.
        if self._sockdir is None:
            if len(str(self.base)) + len("/.s.PGSQL.65535.lock") < 100:
                self._sockdir = self.base
            else:
                self._sockdir = Path(tempfile.mkdtemp(prefix="xlt-", dir="/tmp"))
                self._sockdir.chmod(0o755)
                self._chown(self._sockdir)
        return self._sockdir

    def _write_conf(self) -> None:
        path = self.datadir / "xlogtools.conf"
        path.write_text("".join(f"{k} = {_conf_value(v)}\n" for k, v in self.settings().items()))
        self._chown(path)

    def postmaster_pid(self) -> int | None:
        """PID of the running postmaster (from postmaster.pid), None when it is not running."""
        try:
            pid = int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid):
            return None
        try:  # a stale file's PID may since belong to someone else
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return None
        return pid if str(self.datadir) in cmdline else None

    def is_running(self) -> bool:
        return self.postmaster_pid() is not None

    def pids(self) -> set[int]:
        """Live PIDs of the postmaster and all its descendants (backends, walwriter...)."""
        pm = self.postmaster_pid()
        return set() if pm is None else {pm, *(p for p in _descendants(pm) if _alive(p))}

    def start(self, timeout: float = 90) -> Cluster:
        """pg_ctl start -w; picks a free port (kept across restarts), retries lost port races."""
        pidfile = self.datadir / "postmaster.pid"
        if pidfile.exists() and not self.is_running():
            # Left by crash(): its PID may be an unreaped zombie, which the new postmaster would
            # mistake for a live one ("lock file already exists").  Nothing of ours runs now.
            pidfile.unlink()
        if self._sockdir is not None and not self.is_running():
            for lock in self._sockdir.glob(".s.PGSQL.*.lock"):  # same zombie story
                with contextlib.suppress(OSError, ValueError):
                    if not _alive(int(lock.read_text().split("\n", 1)[0])):
                        lock.unlink()
        for attempt in range(6):
            if not self.port:
                self.port = _free_port()
            self._write_conf()
            offset = len(self.log_text())
            res = self.run([self.bindir / "pg_ctl", "-D", self.datadir, "-l", self.logfile,
                            "-w", "-t", str(int(timeout)), "start"],
                           timeout=timeout + 30, check=False)
            if res.returncode == 0:
                return self
            new_log = self.log_text()[offset:]
            if "wal_compression" in new_log and "invalid value" in new_log:
                raise Unavailable(f"PostgreSQL {self.major} ({self.bindir}) does not support "
                                  f"wal_compression={self.wal_compression}")
            if ("could not bind" in new_log or "Address already in use" in new_log) \
                    and attempt < 5:
                self.port = 0
                continue
            raise self._fail("pg_ctl start", res.returncode, res.stdout, res.stderr)
        raise AssertionError("unreachable")

    def stop(self, mode: str = "fast", timeout: float = 90) -> None:
        """pg_ctl stop -m smart|fast|immediate; a no-op when the server is not running."""
        if not self.is_running():
            return
        self.run([self.bindir / "pg_ctl", "-D", self.datadir, "-m", mode, "-w",
                  "-t", str(int(timeout)), "stop"], timeout=timeout + 30)

    def restart(self) -> Cluster:
        self.stop()
        return self.start()

    def promote(self, timeout: float = 60) -> None:
        """Promote a standby and wait until it accepts writes."""
        self.run([self.bindir / "pg_ctl", "-D", self.datadir, "-w", "-t", str(int(timeout)),
                  "promote"], timeout=timeout + 30)
        wait_until(lambda: self.sql("SELECT pg_is_in_recovery()") == [("f",)], timeout,
                   what=f"{self.name} to leave recovery")

    def crash(self, timeout: float = 30) -> None:
        """Kill the whole cluster at one instant, as a power loss would (minus the page cache).

        SIGSTOP the postmaster first (so it forks nothing new), then every descendant until no
        new one appears, then SIGKILL all of them and wait until none is alive.
        """
        pm = self.postmaster_pid()
        if pm is None:
            raise ClusterError(f"{self.name}: crash() but the server is not running")
        frozen: set[int] = set()
        todo = {pm}
        while todo:
            for pid in todo:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            frozen |= todo
            todo = _descendants(pm) - frozen
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not any(_alive(p) for p in frozen), timeout, 0.02,
                   what=f"{self.name}'s processes to die")

    def destroy(self) -> None:
        """Stop (immediate; kill if that fails) and remove every directory of the cluster."""
        with contextlib.suppress(Exception):
            self.stop("immediate", timeout=30)
        if self.is_running():
            with contextlib.suppress(Exception):
                self.crash()
        shutil.rmtree(self.base, ignore_errors=True)
        if self._sockdir is not None and self._sockdir != self.base:
            shutil.rmtree(self._sockdir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- talking to it -------------------------------------------------------------------------
    def _conn_args(self, db: str) -> list[str]:
        return ["-h", HOST, "-p", str(self.port), "-U", SUPERUSER, "-d", db]

    def psql_raw(self, args: Sequence[str], *, db: str = "postgres", input: str | None = None,
                 timeout: float = 120) -> str:
        """psql -X -v ON_ERROR_STOP=1 <connection> ARGS; returns stdout (raises on failure)."""
        cmd: list[str | os.PathLike[str]] = [self.tool("psql"), "-X", "-v", "ON_ERROR_STOP=1",
                                              *self._conn_args(db), *args]
        return self.run(cmd, input=input, timeout=timeout).stdout

    def sql(self, query: str, db: str = "postgres", timeout: float = 120
            ) -> list[tuple[str | None, ...]]:
        """Rows of one SQL statement as tuples of text, None for NULL.

        psql's CSV output quotes separators, quotes and newlines inside values, and NULL is a
        random marker, so any text round-trips.  (A zero-column row reads as ('',).)
        """
        out = self.psql_raw(["-A", "-t", "-q", "--csv", "-P", f"null={_NULL}", "-c", query],
                            db=db, timeout=timeout)
        return [tuple(None if f == _NULL else f for f in (rec or [""]))
                for rec in csv.reader(io.StringIO(out, newline=""))]

    def execute(self, script: str, db: str = "postgres", timeout: float = 300) -> str:
        """Run a multi-statement SQL script (stops at the first error); returns psql's stdout."""
        return self.psql_raw(["-A", "-t", "-q", "-f", "-"], db=db, input=script,
                             timeout=timeout)

    def pgbench(self, args: Sequence[str], db: str = "postgres", timeout: float = 600) -> str:
        """pgbench <connection> ARGS DB (13 borrows another major's pgbench); returns stdout."""
        cmd: list[str | os.PathLike[str]] = [self.tool("pgbench"), "-h", HOST, "-p",
                                              str(self.port), "-U", SUPERUSER, *args, db]
        return self.run(cmd, timeout=timeout).stdout

    def current_lsn(self) -> str:
        """Insert position (primary) or last replayed position (standby), as 'X/XXXXXXXX'."""
        return str(self.sql("SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
                            " ELSE pg_current_wal_lsn() END")[0][0])

    def make_standby(self, base: str | os.PathLike[str], **kw: Any) -> Cluster:
        return make_standby(self, base, **kw)


def make_standby(primary: Cluster, base: str | os.PathLike[str], *, start: bool = True,
                 conf: Mapping[str, object] | None = None, name: str | None = None,
                 timeout: float = 300) -> Cluster:
    """A streaming hot standby of ``primary`` made with pg_basebackup -R -X stream.

    It gets the primary's options (WAL settings must match) plus ``conf``; -R writes
    standby.signal and primary_conninfo, so the standby starts streaming on start().
    """
    standby = Cluster(primary.major, base, wal_level=primary.wal_level,
                      wal_segsize_mb=primary.wal_segsize_mb,
                      wal_compression=primary.wal_compression,
                      full_page_writes=primary.full_page_writes,
                      data_checksums=primary.data_checksums,
                      conf={**primary.conf, **(conf or {})}, name=name)
    standby._mkdir(standby.base)
    standby.run([standby.tool("pg_basebackup"), "-D", standby.datadir, "-h", primary.host,
                 "-p", str(primary.port), "-U", SUPERUSER, "-R", "-X", "stream", "-c", "fast",
                 "--no-sync"], timeout=timeout)
    standby.datadir.chmod(0o700)
    # -R writes every option the *client's* libpq knows; a borrowed newer pg_basebackup (13)
    # writes some (sslsni...) the server's older libpq rejects.  Keep only what matters, and
    # name the standby so synchronous_standby_names can refer to it.
    auto = standby.datadir / "postgresql.auto.conf"
    lines = [ln for ln in auto.read_text().splitlines()
             if not ln.lstrip().startswith("primary_conninfo")]
    lines.append("primary_conninfo = " + _conf_value(
        f"host={primary.host} port={primary.port} user={SUPERUSER} "
        f"application_name={standby.name}"))
    auto.write_text("\n".join(lines) + "\n")
    if start:
        standby.start()
    return standby
