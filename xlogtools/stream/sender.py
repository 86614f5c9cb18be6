"""walsender on asyncio: serve the WAL of an archive directory to physical standbys.

The protocol is `backend.Backend` (sans-I/O); this module does the waiting: one task per
client, one task that polls DIR for new files. What it sends mirrors walsender.c:
XLogData of at most 128 kB from the requested LSN, keepalives (with a reply request when the
client has been silent for half the timeout), CopyDone at the end of a historic timeline and
the (next_tli, next_tli_startpos) result set, "requested WAL segment %s has already been
removed" for what the archive lacks, and a wal_sender_timeout-like drop of silent clients.

How far a segment may be sent (`valid_length`): pages whose header carries the right magic
and address, then the last non-zero byte of the last such page (extended over a final record
whose CRC checks): the tail of a segment still being written, or a recycled file's stale
pages, are never sent, so nothing sent has to be taken back.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import secrets
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from crc32c import crc32c

from ..errors import InputError, XlogError
from ..lsn import Lsn
from ..parse import layout as L
from ..parse.source import SegmentFile, WalSource
from .backend import (ADMIN_SHUTDOWN, FEATURE_NOT_SUPPORTED, INTERNAL_ERROR,
                      INVALID_AUTHORIZATION, INVALID_PASSWORD, INT8OID, MAX_SEND_SIZE,
                      OBJECT_NOT_IN_STATE, TEXTOID, BYTEAOID,
                      UNDEFINED_FILE, Backend, BState, CancelRequest, ClientProtocolError,
                      CommandError, EmptyCommand, GSSENCRequest, HotStandbyFeedback,
                      IdentifySystem, ReadReplicationSlot, ScramError, ScramExchange,
                      ScramVerifier, Show, StartReplication, TimelineHistory, encode_xlogdata,
                      error_response, notice_response, parse_command, result_set,
                      server_parameters)
from .protocol import (NEED_DATA, AuthenticationOk, AuthenticationSASL,
                       AuthenticationSASLContinue, AuthenticationSASLFinal, BackendKeyData,
                       CommandComplete, ConnectionClosed, CopyBothResponse, CopyDone,
                       EmptyQueryResponse, NegotiateProtocolVersion, PrimaryKeepalive, Query,
                       ReadyForQuery, SASLInitialResponse, SASLResponse, SSLRequest,
                       SSLResponse, StandbyStatusUpdate, StartupMessage, Terminate, pg_now)

log = logging.getLogger("xlogtools.serve")

_U32 = struct.Struct("<I")
_TRUE = {"true", "on", "yes", "1"}
_FALSE = {"false", "off", "no", "0"}


class ServeError(XlogError):
    pass


@dataclass
class ServeOptions:
    directory: str | os.PathLike[str]
    host: str = "127.0.0.1"
    port: int = 5432
    users: dict[str, ScramVerifier] | None = None  # None with trust=True
    trust: bool = False
    timeout: float = 60.0  # wal_sender_timeout; 0 disables
    poll_interval: float = 0.5
    keepalive_interval: float = 10.0
    status_file: str | os.PathLike[str] | None = None
    status_interval: float = 10.0
    max_clients: int = 64
    pg_major: int | None = None  # default: from the archive's page magic

    def validate(self) -> None:
        if self.trust and not is_loopback(self.host):
            raise ServeError(f"--trust is accepted only with a loopback --host, not "
                             f"\"{self.host}\"")
        if not self.trust and self.users is None:
            raise ServeError("name a users file with --auth FILE (or --trust on loopback)")


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# how much of a segment may be sent


def valid_length(data: bytes, segno: int, seg_size: int, block_size: int, magic: int) -> tuple[int, bool]:
    """(bytes from the segment start that may be sent, every page valid and present)."""
    seg_start = segno * seg_size
    n = min(len(data), seg_size)
    pos = 0
    while pos + L.SIZE_OF_SHORT_PHD <= n:
        m, _info, _tli, addr, _rem = L.PAGE_HEADER.unpack_from(data, pos)
        if m != magic or addr != seg_start + pos:
            break
        pos += block_size
    pages_end = min(pos, n)
    if pages_end == 0:
        return 0, False
    last = pages_end - block_size if pages_end % block_size == 0 else pages_end - pages_end % block_size
    page = data[last:pages_end]
    end = last + len(page.rstrip(b"\0"))
    end = max(end, _complete_last_record(data, last, pages_end, end))
    return end, pages_end >= seg_size


def _complete_last_record(data: bytes, page: int, page_end: int, end: int) -> int:
    """Extend `end` to the end of a record of this page whose last bytes are zeros, when the
    record's CRC proves it complete (a shutdown checkpoint ends in zero xids)."""
    info, rem = struct.unpack_from("<H", data, page + 2)[0], _U32.unpack_from(data, page + 16)[0]
    hdr = L.SIZE_OF_LONG_PHD if info & L.XLP_LONG_HEADER else L.SIZE_OF_SHORT_PHD
    pos = page + hdr + ((rem + 7) & ~7 if info & L.XLP_FIRST_IS_CONTRECORD else 0)
    while pos + L.SIZE_OF_XLOG_RECORD <= page_end and pos < end:
        tot = _U32.unpack_from(data, pos)[0]
        if tot < L.SIZE_OF_XLOG_RECORD or pos + tot > page_end:
            break
        rec_end = pos + tot
        if rec_end > end:
            crc = _U32.unpack_from(data, pos + 20)[0]
            if crc32c(data[pos + 24:rec_end] + data[pos:pos + 20]) == crc:
                return rec_end
            break
        pos = (rec_end + 7) & ~7
    return end


class Archive:
    """DIR as a walsender sees it: rescanned when its files change; segment bytes cached."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.source: WalSource | None = None
        self._signature: tuple[Any, ...] = ()
        self._cache: OrderedDict[tuple[Path, int, int], tuple[bytes, int, bool]] = OrderedDict()
        self.generation = 0
        self.holes_reported: set[tuple[int, int]] = set()

    def _scan_signature(self) -> tuple[Any, ...]:
        out = []
        for root, dirs, files in os.walk(self.directory):
            dirs[:] = [d for d in dirs if d not in ("archive_status", "summaries")]
            for f in files:
                if f.endswith(".tmp") or f.startswith("."):
                    continue
                try:
                    st = os.stat(os.path.join(root, f))
                except OSError:
                    continue
                out.append((root, f, st.st_size, st.st_mtime_ns))
        out.sort()
        return tuple(out)

    def refresh(self) -> bool:
        """Rescan DIR; True when something changed."""
        sig = self._scan_signature()
        if sig == self._signature and self.source is not None:
            return False
        try:
            src = WalSource.open([self.directory])
        except InputError as exc:
            if self.source is None:
                log.debug("archive not usable yet: %s", exc)
                self._signature = sig
                return False
            log.warning("rescanning %s: %s", self.directory, exc)
            return False
        self._signature = sig
        self.source = src
        self.generation += 1
        return True

    # -- what the archive holds ---------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.source is not None and self.source.cluster is not None

    def current_timeline(self) -> int:
        assert self.source is not None
        return max(self.source.timelines())

    def history(self, tli: int) -> list[Any]:
        assert self.source is not None
        return self.source.histories.get(tli, [])

    def segment_data(self, seg: SegmentFile, segno: int) -> tuple[bytes, int, bool]:
        """(bytes, sendable length, complete) of one segment file (cached by name/size/mtime)."""
        assert self.source is not None
        try:
            st = seg.path.stat()
        except OSError:
            return b"", 0, False
        key = (seg.path, st.st_size, st.st_mtime_ns)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        data = self.source.read(seg)
        cl = self.source.cluster
        assert cl is not None
        n, complete = valid_length(data, segno, cl.seg_size, cl.block_size, cl.magic)
        res = (data, n, complete)
        self._cache[key] = res
        while len(self._cache) > 6:
            self._cache.popitem(last=False)
        return res

    def file_for(self, plan: "TimelinePlan", segno: int) -> SegmentFile | None:
        assert self.source is not None
        seg_size = self.source.seg_size
        chain = plan.chain
        for i in range(len(chain) - 1, -1, -1):
            tli, begin = chain[i]
            if int(begin) // seg_size <= segno:
                f = self.source.segment(tli, segno)
                if f is not None:
                    return f
                # The switch segment of a historic timeline may also come from the old one.
                if i > 0 and plan.valid_upto is not None and i == len(chain) - 1 \
                        and int(plan.valid_upto) // seg_size == segno:
                    continue
                return None
        return None

    def first_segno(self, plan: "TimelinePlan") -> int | None:
        assert self.source is not None
        tlis = {t for t, _ in plan.chain}
        segs = [s for (t, s) in self.source.files if t in tlis]
        return min(segs) if segs else None

    def last_segno(self, plan: "TimelinePlan") -> int | None:
        assert self.source is not None
        tlis = {t for t, _ in plan.chain}
        segs = [s for (t, s) in self.source.files if t in tlis]
        return max(segs) if segs else None

    def end_of_wal(self, tli: int) -> Lsn:
        """Where the WAL of `tli` (with its ancestors) ends in the archive: the xlogpos of
        IDENTIFY_SYSTEM."""
        assert self.source is not None
        plan = self.plan(tli, Lsn(0))
        seg_size = self.source.seg_size
        last = self.last_segno(plan)
        if last is None:
            return Lsn(0)
        for segno in range(last, max(-1, last - 64), -1):
            f = self.file_for(plan, segno)
            if f is None:
                continue
            _, n, _ = self.segment_data(f, segno)
            if n > 0:
                return Lsn(segno * seg_size + n)
        return Lsn(0)

    def plan(self, tli: int, start: Lsn) -> "TimelinePlan":
        """What streaming `tli` from `start` means here (StartReplication of walsender.c)."""
        assert self.source is not None
        cur = self.current_timeline()
        if tli == 0:
            tli = cur
        if tli == cur:
            return TimelinePlan(tli, _chain(self.source.expected_timelines(cur)), None, None)
        hist = self.history(cur)
        for i, h in enumerate(hist):
            if h.tli == tli:
                nxt = hist[i + 1].tli if i + 1 < len(hist) else cur
                chain = _chain(self.source.expected_timelines(cur))
                # the requested timeline's chain, then the next one from the switch point
                idx = [t for t, _ in chain].index(tli)
                chain = chain[:idx + 1] + [(nxt, h.switchpoint)]
                return TimelinePlan(tli, chain, h.switchpoint, nxt)
        raise CommandError(INTERNAL_ERROR, f"requested timeline {tli} is not in this server's "
                           "history")


def _chain(expected: list[tuple[int, Lsn, Lsn | None]]) -> list[tuple[int, Lsn]]:
    return [(t, b) for t, b, _ in expected]


@dataclass(frozen=True)
class TimelinePlan:
    timeline: int
    chain: list[tuple[int, Lsn]]  # (tli, begin) oldest first; the last one's files are newest
    valid_upto: Lsn | None  # switch point when the timeline is historic
    next_tli: int | None


# ---------------------------------------------------------------------------------------------
# per-client state, shown by the status view


@dataclass
class ClientStatus:
    id: int
    peer: str
    user: str = ""
    application_name: str = ""
    state: str = "startup"
    timeline: int = 0
    start: int = 0
    sent: int = 0
    write: int = 0
    flush: int = 0
    apply: int = 0
    connected_at: float = field(default_factory=time.time)
    last_reply: float | None = None
    hot_standby_xmin: int = 0
    note: str = ""

    def as_json(self, archive_end: int) -> dict[str, Any]:
        return {"id": self.id, "peer": self.peer, "user": self.user,
                "application_name": self.application_name, "state": self.state,
                "timeline": self.timeline, "sent_lsn": str(Lsn(self.sent)),
                "write_lsn": str(Lsn(self.write)), "flush_lsn": str(Lsn(self.flush)),
                "replay_lsn": str(Lsn(self.apply)),
                "sent_lag_bytes": max(0, archive_end - self.sent) if archive_end else None,
                "flush_lag_bytes": max(0, self.sent - self.flush) if self.flush else None,
                "replay_lag_bytes": max(0, self.sent - self.apply) if self.apply else None,
                "connected_at": _iso(self.connected_at),
                "last_reply": _iso(self.last_reply) if self.last_reply else None,
                "note": self.note}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class _Drop(Exception):
    """End this client's connection (the reason was logged / sent)."""


# ---------------------------------------------------------------------------------------------
# the server


class WalSender:
    """`await start()`, then `await serve_forever()`; `wake()` after new WAL lands in DIR."""

    def __init__(self, options: ServeOptions) -> None:
        options.validate()
        self.options = options
        self.archive = Archive(options.directory)
        self.clients: dict[int, ClientStatus] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._mock_secret = secrets.token_bytes(16)
        self.port = options.port

    async def start(self) -> None:
        self.archive.refresh()
        if not self.archive.ready:
            log.warning("no WAL in %s yet: clients will be refused until some arrives",
                        self.options.directory)
        self._server = await asyncio.start_server(self._client, self.options.host,
                                                  self.options.port, limit=1 << 20)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("serving %s on %s:%d", self.options.directory, self.options.host, self.port)
        self._spawn(self._poll())
        if self.options.status_file or self.options.status_interval:
            self._spawn(self._status_loop())

    def _spawn(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def serve_forever(self) -> None:
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def wake(self) -> None:
        """New WAL may be in DIR: rescan and let waiting clients send it."""
        self._check_archive()

    def _check_archive(self) -> None:
        try:
            changed = self.archive.refresh()
        except XlogError as exc:
            log.warning("archive scan failed: %s", exc)
            return
        if changed:
            ev, self._changed = self._changed, asyncio.Event()
            ev.set()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.options.poll_interval)
            self._check_archive()

    # -- status -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        end = 0
        if self.archive.ready:
            with contextlib.suppress(Exception):
                end = int(self.archive.end_of_wal(self.archive.current_timeline()))
        return {"time": _iso(time.time()), "directory": str(self.options.directory),
                "timeline": self.archive.current_timeline() if self.archive.ready else None,
                "archive_end_lsn": str(Lsn(end)),
                "clients": [c.as_json(end) for c in self.clients.values()]}

    def status_text(self) -> str:
        st = self.status()
        lines = [f"archive end {st['archive_end_lsn']} (timeline {st['timeline']}), "
                 f"{len(st['clients'])} client(s)"]
        for c in st["clients"]:
            lines.append(f"  #{c['id']} {c['application_name'] or '-'} {c['peer']} {c['state']} "
                         f"tli {c['timeline']} sent {c['sent_lsn']} write {c['write_lsn']} "
                         f"flush {c['flush_lsn']} replay {c['replay_lsn']} "
                         f"lag {c['sent_lag_bytes']} B" + (f" ({c['note']})" if c['note'] else ""))
        return "\n".join(lines)

    def write_status_file(self) -> None:
        path = self.options.status_file
        if not path:
            return
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.status(), indent=1) + "\n")
        os.replace(tmp, p)

    async def _status_loop(self) -> None:
        interval = self.options.status_interval or 10.0
        file_every = min(interval, 1.0)
        last_text = time.monotonic()
        while True:
            await asyncio.sleep(file_every)
            with contextlib.suppress(Exception):
                self.write_status_file()
            if self.options.status_interval and time.monotonic() - last_text >= interval \
                    and self.clients:
                last_text = time.monotonic()
                log.info("%s", self.status_text())

    # -- one client ---------------------------------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        cid = next(self._ids)
        st = ClientStatus(cid, f"{peer[0]}:{peer[1]}" if peer else "?")
        self.clients[cid] = st
        session = _Session(self, reader, writer, st)
        try:
            await session.run()
        except _Drop:
            pass
        except ClientProtocolError as exc:
            log.info("client #%d: %s", cid, exc)
            session.try_send(error_response(exc.sqlstate, str(exc), severity="FATAL"))
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            log.info("client #%d: connection lost", cid)
        except asyncio.CancelledError:
            session.try_send(error_response(ADMIN_SHUTDOWN, "terminating connection due to "
                                            "administrator command", severity="FATAL"))
            raise
        except Exception as exc:  # a bug of ours must not take the server down
            log.exception("client #%d: internal error", cid)
            session.try_send(error_response(INTERNAL_ERROR, f"internal error: {exc}",
                                            severity="FATAL"))
        finally:
            self.clients.pop(cid, None)
            with contextlib.suppress(Exception):
                writer.close()
            log.info("client #%d (%s) disconnected", cid, st.application_name or st.peer)


class _Session:
    def __init__(self, server: WalSender, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, st: ClientStatus) -> None:
        self.server = server
        self.opts = server.options
        self.archive = server.archive
        self.reader = reader
        self.writer = writer
        self.st = st
        self.be = Backend()
        self.last_recv = time.monotonic()
        self.got_message = asyncio.Event()

    # -- I/O helpers --------------------------------------------------------------------------
    def send(self, *events: object) -> None:
        self.writer.write(b"".join(self.be.send(e) for e in events))

    def try_send(self, ev: object) -> None:
        with contextlib.suppress(Exception):
            self.send(ev)

    async def drain(self) -> None:
        t = self.opts.timeout or None
        try:
            await asyncio.wait_for(self.writer.drain(), t)
        except asyncio.TimeoutError:
            self._timed_out()

    def _timed_out(self) -> None:
        log.warning("client #%d (%s): terminating walsender process due to replication "
                    "timeout", self.st.id, self.st.application_name or self.st.peer)
        self.writer.transport.abort()
        raise _Drop()

    async def next_event(self, timeout: float | None) -> Any:
        while True:
            ev = self.be.next_event()
            if ev is not NEED_DATA:
                self.last_recv = time.monotonic()
                return ev
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            self.be.receive_data(data)

    # -- phases -------------------------------------------------------------------------------
    async def run(self) -> None:
        await asyncio.wait_for(self.startup(), 60.0)
        self.st.state = "idle"
        await self.command_loop()

    async def startup(self) -> None:
        while True:
            ev = await self.next_event(None)
            if isinstance(ev, (SSLRequest, GSSENCRequest)):
                self.send(SSLResponse(False))  # answered 'N': we speak plain TCP only
                await self.drain()
                continue
            if isinstance(ev, CancelRequest):
                raise _Drop()  # walsenders have nothing to cancel
            if isinstance(ev, ConnectionClosed):
                raise _Drop()
            break
        assert isinstance(ev, StartupMessage)
        params = dict(ev.parameters)
        unknown = [k for k in params if k.startswith("_pq_.")]
        if getattr(self.be, "protocol_minor", 0) > 0 or unknown:
            self.send(NegotiateProtocolVersion(0, tuple(unknown)))
        user = params.get("user", "")
        self.st.user = user
        self.st.application_name = params.get("application_name", "")
        if not user:
            self.fatal(INVALID_AUTHORIZATION, "no PostgreSQL user name specified in startup "
                       "packet")
        repl = params.get("replication", "").lower()
        if repl == "database":
            self.fatal(FEATURE_NOT_SUPPORTED, "xlogtools serve does not support logical "
                       "replication (replication=database)")
        if repl not in _TRUE:
            self.fatal(INVALID_AUTHORIZATION,
                       f"xlogtools serve accepts only physical replication connections: user "
                       f"\"{user}\", database \"{params.get('database', user)}\" asked for a "
                       f"normal session", hint="Connect with replication=true (as a standby's "
                       "primary_conninfo or pg_receivewal do).")
        if not self.archive.ready:
            self.fatal("57P03", "the database system is starting up",
                       detail=f"No WAL in {self.opts.directory} yet.")
        await self.authenticate(user)
        major = self.opts.pg_major or self.archive.source.cluster.pg_major  # type: ignore[union-attr]
        self.send(AuthenticationOk(), *server_parameters(major, user, self.st.application_name),
                  BackendKeyData(os.getpid() & 0x7FFFFFFF, secrets.token_bytes(4)),
                  ReadyForQuery("I"))
        await self.drain()
        log.info("client #%d: %s connected as \"%s\" (%s)", self.st.id, self.st.peer, user,
                 self.st.application_name or "-")

    def fatal(self, sqlstate: str, message: str, *, detail: str | None = None,
              hint: str | None = None) -> None:
        log.info("client #%d refused: %s", self.st.id, message)
        self.try_send(error_response(sqlstate, message, severity="FATAL", detail=detail,
                                     hint=hint))
        raise _Drop()

    async def authenticate(self, user: str) -> None:
        if self.opts.trust:
            peer = self.writer.get_extra_info("peername")
            if not peer or not _peer_is_loopback(peer[0]):
                self.fatal(INVALID_AUTHORIZATION, f"no trust for host \"{peer and peer[0]}\"")
            return
        users = self.opts.users or {}
        verifier = users.get(user)
        exchange = ScramExchange(user, verifier or ScramVerifier.mock(user,
                                                                     self.server._mock_secret),
                                 known=verifier is not None)
        self.send(AuthenticationSASL((ScramExchange.MECHANISM,)))
        await self.drain()
        try:
            ev = await self.next_event(None)
            if not isinstance(ev, SASLInitialResponse):
                raise _Drop()
            self.send(AuthenticationSASLContinue(exchange.first(ev.mechanism, ev.data)))
            await self.drain()
            ev = await self.next_event(None)
            if not isinstance(ev, SASLResponse):
                raise _Drop()
            self.send(AuthenticationSASLFinal(exchange.final(ev.data)))
        except ScramError as exc:
            if exc.sqlstate == INVALID_PASSWORD:
                log.warning("client #%d: password authentication failed for user \"%s\"%s",
                            self.st.id, user, "" if verifier else " (no such user)")
            self.fatal(exc.sqlstate, str(exc), detail=exc.detail)

    async def command_loop(self) -> None:
        while True:
            ev = await self.next_event(None)
            if isinstance(ev, (Terminate, ConnectionClosed)):
                raise _Drop()
            if not isinstance(ev, Query):
                continue  # stray copy messages after an error (ignored, as postgres.c does)
            try:
                cmd = parse_command(ev.sql)
                await self.execute(cmd)
            except CommandError as exc:
                log.info("client #%d: %s: %s", self.st.id, ev.sql[:80], exc)
                self.send(error_response(exc.sqlstate, str(exc), detail=exc.detail))
            self.send(ReadyForQuery("I"))
            await self.drain()
            self.st.state = "idle"

    async def execute(self, cmd: Any) -> None:
        arch = self.archive
        src = arch.source
        assert src is not None
        if isinstance(cmd, EmptyCommand):
            self.send(EmptyQueryResponse())
        elif isinstance(cmd, IdentifySystem):
            tli = arch.current_timeline()
            end = arch.end_of_wal(tli)
            self.send(*result_set([("systemid", TEXTOID), ("timeline", INT8OID),
                                   ("xlogpos", TEXTOID), ("dbname", TEXTOID)],
                                  [(str(src.cluster.sysid).encode(), str(tli).encode(),  # type: ignore[union-attr]
                                    str(end).encode(), None)], "IDENTIFY_SYSTEM"))
        elif isinstance(cmd, Show):
            self.send(*result_set([(cmd.name, TEXTOID)], [(self.show(cmd.name).encode(),)],
                                  "SHOW"))
        elif isinstance(cmd, TimelineHistory):
            p = src.history_files.get(cmd.timeline)
            name = f"{cmd.timeline:08X}.history"
            if p is None:
                raise CommandError(UNDEFINED_FILE, f"could not open file \"pg_wal/{name}\": No "
                                   "such file or directory")
            from ..parse.source import _HISTORY_RE, read_file_bytes
            m = _HISTORY_RE.match(p.name)
            content = read_file_bytes(p, m.group("comp") if m else None)
            self.send(*result_set([("filename", TEXTOID), ("content", BYTEAOID)],
                                  [(name.encode(), content)], "TIMELINE_HISTORY"))
        elif isinstance(cmd, ReadReplicationSlot):
            # No slots here: NULLs, as walsender answers for a slot that does not exist.
            self.send(*result_set([("slot_type", TEXTOID), ("restart_lsn", TEXTOID),
                                   ("restart_tli", INT8OID)], [(None, None, None)],
                                  "READ_REPLICATION_SLOT"))
        elif isinstance(cmd, StartReplication):
            await self.start_replication(cmd)
        else:  # pragma: no cover
            raise CommandError(FEATURE_NOT_SUPPORTED, "unsupported command")

    def show(self, name: str) -> str:
        src = self.archive.source
        assert src is not None
        seg = src.seg_size
        values = {
            "wal_segment_size": f"{seg >> 30}GB" if seg >= 1 << 30 else f"{seg >> 20}MB",
            "wal_block_size": str(src.block_size), "block_size": "8192",
            "data_directory_mode": "0700", "server_version": f"{src.cluster.pg_major}.0",  # type: ignore[union-attr]
            "server_version_num": str(src.cluster.pg_major * 10000),  # type: ignore[union-attr]
            "server_encoding": "UTF8", "client_encoding": "UTF8", "integer_datetimes": "on",
            "max_wal_senders": str(self.opts.max_clients),
            "wal_sender_timeout": f"{int(self.opts.timeout * 1000)}ms",
            "timezone": "UTC", "in_hot_standby": "off", "transaction_read_only": "off",
        }
        v = values.get(name.lower())
        if v is None:
            raise CommandError("42704", f"unrecognized configuration parameter \"{name}\"")
        return v

    # -- streaming ----------------------------------------------------------------------------
    async def start_replication(self, cmd: StartReplication) -> None:
        arch = self.archive
        plan = arch.plan(cmd.timeline, cmd.start)
        src = arch.source
        assert src is not None
        if plan.valid_upto is not None and cmd.start > plan.valid_upto:
            raise CommandError(OBJECT_NOT_IN_STATE,
                               f"requested starting point {cmd.start} on timeline {plan.timeline}"
                               " is not in this server's history",
                               f"This server's history forked from timeline {plan.timeline} at "
                               f"{plan.valid_upto}.")
        if cmd.slot:
            log.info("client #%d: slot \"%s\" ignored (the archive keeps no slots)", self.st.id,
                     cmd.slot)
        st = self.st
        st.timeline, st.start, st.sent = plan.timeline, int(cmd.start), int(cmd.start)
        st.state = "streaming"
        log.info("client #%d: START_REPLICATION %s TIMELINE %d", st.id, cmd.start, plan.timeline)
        if plan.valid_upto is None or cmd.start < plan.valid_upto:
            self.send(CopyBothResponse(0))
            await self.drain()
            await self.stream(plan, int(cmd.start))
            if self.be.state is BState.QUERY and st.note.startswith("error"):
                return  # an ErrorResponse ended the copy
        if plan.valid_upto is not None:
            self.send(*result_set([("next_tli", INT8OID), ("next_tli_startpos", TEXTOID)],
                                  [(str(plan.next_tli).encode(), str(plan.valid_upto).encode())],
                                  "START_STREAMING")[:-1])
        self.send(CommandComplete("START_STREAMING"))

    async def stream(self, plan: TimelinePlan, pos: int) -> None:
        """The WalSndLoop: send, keepalive, wait; returns after both CopyDones."""
        st = self.st
        src = self.archive.source
        assert src is not None
        seg_size = src.seg_size
        reader = asyncio.ensure_future(self.read_replies())
        timeout = self.opts.timeout
        last_reply_request = 0.0
        last_send = time.monotonic()
        try:
            while True:
                if reader.done():
                    reader.result()  # raises the client's protocol error, or _Drop
                if self.be.state in (BState.QUERY,):
                    return  # both CopyDones exchanged
                now = time.monotonic()
                silent = now - self.last_recv
                if timeout and silent > timeout:
                    self._timed_out()
                if timeout and silent > timeout / 2 and now - last_reply_request > timeout / 2:
                    self.send(PrimaryKeepalive(st.sent, pg_now(), True))
                    last_reply_request = last_send = now
                    await self.drain()
                elif now - last_send > self.opts.keepalive_interval:
                    self.send(PrimaryKeepalive(st.sent, pg_now(), False))
                    last_send = now
                    await self.drain()
                if self.be.state is BState.COPY_SERVER_DONE:
                    await self.wait(reader, 1.0)  # for the client's CopyDone
                    continue
                if self.be.state is BState.COPY_CLIENT_DONE:
                    self.send(CopyDone())  # the client ends streaming: we end too
                    await self.drain()
                    return
                src = self.archive.source
                assert src is not None
                if plan.valid_upto is not None and st.sent >= plan.valid_upto:
                    log.info("client #%d: end of timeline %d at %s; next timeline %d",
                             st.id, plan.timeline, plan.valid_upto, plan.next_tli)
                    self.send(CopyDone())
                    await self.drain()
                    continue
                segno = st.sent // seg_size
                f = self.archive.file_for(plan, segno)
                if f is None:
                    if await self.missing(plan, segno):
                        return
                    await self.wait(reader, 1.0)
                    continue
                data, n, complete = self.archive.segment_data(f, segno)
                if n < seg_size and self._next_exists(plan, segno):
                    # WAL went on in the next segment: the rest of this one is final (zeros
                    # after a WAL switch, or a tail of zeros), send it as walsender would.
                    n = seg_size
                end = segno * seg_size + n
                if plan.valid_upto is not None:
                    end = min(end, int(plan.valid_upto))
                if st.sent < end:
                    st.note = ""
                    sent_now = 0
                    wal_end = end
                    while st.sent < end and sent_now < 4 * MAX_SEND_SIZE * 8:
                        k = min(MAX_SEND_SIZE, end - st.sent)
                        off = st.sent - segno * seg_size
                        self.writer.write(encode_xlogdata(st.sent, wal_end, pg_now(),
                                                          memoryview(data)[off:off + k]))
                        st.sent += k
                        sent_now += k
                    last_send = time.monotonic()
                    await self.drain()
                    continue
                await self.wait(reader, 1.0)
        finally:
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    def _next_exists(self, plan: TimelinePlan, segno: int) -> bool:
        f = self.archive.file_for(plan, segno + 1)
        if f is None:
            return False
        _, n, _ = self.archive.segment_data(f, segno + 1)
        return n > 0

    async def missing(self, plan: TimelinePlan, segno: int) -> bool:
        """A segment is not in the archive: removed (error, True), a hole, or not yet there."""
        src = self.archive.source
        assert src is not None
        first = self.archive.first_segno(plan)
        last = self.archive.last_segno(plan)
        tli = plan.chain[-1][0]
        for t, b in reversed(plan.chain):
            if int(b) // src.seg_size <= segno:
                tli = t
                break
        name = src.name_of(tli, segno)
        if first is not None and segno < first:
            msg = f"requested WAL segment {name} has already been removed"
            log.warning("client #%d: %s", self.st.id, msg)
            self.st.note = "error: " + msg
            self.send(error_response(UNDEFINED_FILE, msg))
            return True
        if last is not None and segno < last:
            note = (f"WAL segment {name} is missing from the archive while later segments "
                    f"exist: serving stopped at {Lsn(self.st.sent)} until it appears")
            if self.st.note != note:
                log.warning("client #%d: %s", self.st.id, note)
                self.st.note = note
                self.send(notice_response(note))
                await self.drain()
        return False

    async def wait(self, reader: asyncio.Future[Any], timeout: float) -> None:
        changed = asyncio.ensure_future(self.server._changed.wait())
        msg = asyncio.ensure_future(self.got_message.wait())
        try:
            await asyncio.wait({changed, msg, reader}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            msg.cancel()
        self.got_message.clear()

    async def read_replies(self) -> None:
        """Standby messages during COPY BOTH, until the client's CopyDone."""
        st = self.st
        while True:
            ev = self.be.next_event()
            if ev is NEED_DATA:
                data = await self.reader.read(65536)
                self.be.receive_data(data)
                continue
            self.last_recv = time.monotonic()
            st.last_reply = time.time()
            if isinstance(ev, StandbyStatusUpdate):
                st.write, st.flush, st.apply = ev.write, ev.flush, ev.apply
                if ev.reply_requested:
                    self.send(PrimaryKeepalive(st.sent, pg_now(), False))
            elif isinstance(ev, HotStandbyFeedback):
                st.hot_standby_xmin = ev.xmin
            elif isinstance(ev, CopyDone):
                self.got_message.set()
                return
            elif isinstance(ev, (Terminate, ConnectionClosed)):
                raise _Drop()
            self.got_message.set()


def _peer_is_loopback(host: str) -> bool:
    return is_loopback(host.split("%")[0]) or host.startswith("::ffff:127.")


async def serve(options: ServeOptions, *, ready: Callable[[WalSender], None] | None = None) -> None:
    sender = WalSender(options)
    await sender.start()
    if ready:
        ready(sender)
    try:
        await sender.serve_forever()
    finally:
        await sender.close()
