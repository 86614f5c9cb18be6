"""What a running receiver tells its operator: a snapshot of its positions and counters,
served as Prometheus text (`receive --metrics [HOST:]PORT`, loopback by default) and written as
JSON to a file (`--status-file PATH`, replaced atomically), both from the receiver's event loop.

    xlogtools_receive_flushed_lsn_bytes 1.2345e+10   # what is durable in the archive

LSNs are given as byte positions (what `pg_wal_lsn_diff(lsn, '0/0')` returns); lag in bytes is
the server's last reported WAL end minus the flushed position, lag in seconds how long the
oldest WAL the server had reported and the archive has not yet flushed has been waiting.
"""
from __future__ import annotations

import asyncio
import collections
import json
import os
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..errors import UsageError
from ..lsn import Lsn
from .status import write_json_atomic

if TYPE_CHECKING:
    from .receiver import Receiver

SAMPLE_EVERY = 0.25  # seconds between samples of the server's WAL end (for lag in seconds)
WRITE_EVERY = 1.0  # seconds between status file writes


@dataclass(frozen=True)
class ReceiverStatus:
    """One snapshot of a receiver (the status file's JSON object)."""

    state: str
    timeline: int
    received_lsn: str | None
    written_lsn: str | None
    flushed_lsn: str | None
    server_end_lsn: str | None
    lag_bytes: int
    lag_seconds: float
    segments_completed: int
    bytes_received: int
    records_verified: int
    reconnects: int
    verification_failures: int
    storage_waiting: bool
    last_error: str
    last_error_time: float | None
    slot: str | None
    directory: str
    time: float  # when the snapshot was taken (Unix time)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LagClock:
    """Samples of the server's reported WAL end with the time each was first seen, so that
    "how long has the oldest unflushed WAL been waiting" has an answer."""

    def __init__(self) -> None:
        self.samples: collections.deque[tuple[int, float]] = collections.deque(maxlen=4096)

    def sample(self, server_end: int, now: float) -> None:
        if not self.samples or server_end > self.samples[-1][0]:
            self.samples.append((server_end, now))

    def seconds_behind(self, flushed: int, now: float) -> float:
        while len(self.samples) > 1 and self.samples[1][0] <= flushed:
            self.samples.popleft()  # flushed past the next one too: the first is history
        for end, seen in self.samples:
            if end > flushed:
                return max(0.0, now - seen)
        return 0.0


def snapshot(rec: "Receiver", clock: LagClock) -> ReceiverStatus:
    a = rec.archive
    now = time.monotonic()
    server_end = rec.server_end
    clock.sample(server_end, now)
    written = int(a.written) if a is not None else 0
    flushed = int(a.flushed) if a is not None else 0
    r = rec.result
    lsn: Callable[[int], str | None] = (lambda v: str(Lsn(v)) if v else None)  # noqa: E731
    verified = a.verifier.records if a is not None and a.verifier is not None else 0
    return ReceiverStatus(
        state=rec.state, timeline=a.timeline if a is not None else 0,
        received_lsn=lsn(written), written_lsn=lsn(written), flushed_lsn=lsn(flushed),
        server_end_lsn=lsn(server_end),
        lag_bytes=max(0, server_end - flushed) if flushed else 0,
        lag_seconds=round(clock.seconds_behind(flushed, now), 3) if flushed else 0.0,
        segments_completed=a.segments_completed if a is not None else 0,
        bytes_received=r.bytes_received, records_verified=verified,
        reconnects=r.reconnects, verification_failures=rec.verification_failures,
        storage_waiting=rec.storage_waiting, last_error=rec.last_error,
        last_error_time=rec.last_error_time, slot=rec.opts.slot,
        directory=str(rec.opts.directory), time=time.time())


_STATES = ("starting", "connecting", "connected", "streaming", "disconnected",
           "waiting-for-storage", "stopped")


def prometheus_text(st: ReceiverStatus) -> str:
    """The Prometheus text exposition format (version 0.0.4) of a snapshot."""
    def lsn(v: str | None) -> int:
        return int(Lsn(v)) if v else 0

    rows: list[tuple[str, str, str, list[tuple[str, float]]]] = [
        ("received_lsn_bytes", "gauge", "End of the WAL received from the server.",
         [("", lsn(st.received_lsn))]),
        ("written_lsn_bytes", "gauge", "End of the WAL written to the archive's files.",
         [("", lsn(st.written_lsn))]),
        ("flushed_lsn_bytes", "gauge", "End of the WAL made durable (fsynced) in the archive.",
         [("", lsn(st.flushed_lsn))]),
        ("server_end_lsn_bytes", "gauge", "The server's WAL end as it last reported it.",
         [("", lsn(st.server_end_lsn))]),
        ("lag_bytes", "gauge", "Server's last reported WAL end minus the flushed position.",
         [("", st.lag_bytes)]),
        ("lag_seconds", "gauge", "How long the oldest WAL reported by the server and not yet "
         "flushed has been waiting.", [("", st.lag_seconds)]),
        ("timeline", "gauge", "The timeline being written.", [("", st.timeline)]),
        ("segments_completed_total", "counter", "Segment files completed (renamed from "
         ".partial).", [("", st.segments_completed)]),
        ("received_bytes_total", "counter", "WAL bytes received.", [("", st.bytes_received)]),
        ("records_verified_total", "counter", "WAL records verified.",
         [("", st.records_verified)]),
        ("reconnects_total", "counter", "Connections lost or given up and tried again.",
         [("", st.reconnects)]),
        ("verification_failures_total", "counter", "Streamed WAL that failed verification.",
         [("", st.verification_failures)]),
        ("storage_waiting", "gauge", "1 while the archive's storage refuses writes (full, "
         "read-only, I/O errors) and the receiver waits to try again.",
         [("", int(st.storage_waiting))]),
        ("state", "gauge", "1 for the receiver's current state.",
         [(f'{{state="{s}"}}', int(s == st.state)) for s in _STATES]),
        ("last_error_timestamp_seconds", "gauge", "When the last error happened (Unix time; 0: "
         "none).", [("", st.last_error_time or 0)]),
        ("last_error_info", "gauge", "The last error's message.",
         [(f'{{message="{_label(st.last_error)}"}}', 1)] if st.last_error else []),
        ("status_timestamp_seconds", "gauge", "When these figures were taken (Unix time).",
         [("", st.time)]),
    ]
    out = []
    for name, kind, text, values in rows:
        full = f"xlogtools_receive_{name}"
        out.append(f"# HELP {full} {text}")
        out.append(f"# TYPE {full} {kind}")
        out.extend(f"{full}{labels} {_num(v)}" for labels, v in values)
    return "\n".join(out) + "\n"


def _label(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')[:500]


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def write_status_file(path: str | os.PathLike[str], st: ReceiverStatus) -> None:
    """Replace `path` with the snapshot as JSON: written to a temporary file beside it, then
    renamed over it, so a reader sees the old content or the new, never a part."""
    write_json_atomic(path, st.as_dict(), tmp_prefix=".")


def parse_listen(value: str) -> tuple[str, int]:
    """[HOST:]PORT (HOST defaults to 127.0.0.1; [::1]:PORT for IPv6)."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"invalid --metrics address \"{value}\": use [HOST:]PORT")
    return host, int(port)


class Publisher:
    """Serves /metrics (and /status, the JSON) over HTTP and writes the status file, while the
    receiver runs in the same event loop."""

    def __init__(self, rec: "Receiver", listen: str | None,
                 status_file: str | os.PathLike[str] | None) -> None:
        self.rec = rec
        self.listen = parse_listen(listen) if listen else None
        self.status_file = status_file
        self.clock = LagClock()
        self._server: asyncio.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        """Where /metrics is served (the port chosen when 0 was asked for)."""
        if self._server is None or not self._server.sockets:
            return None
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def start(self) -> None:
        if self.listen is not None:
            host, port = self.listen
            try:
                self._server = await asyncio.start_server(self._serve, host, port)
            except OSError as exc:
                raise UsageError(f"could not listen on {host}:{port} for --metrics: "
                                 f"{exc.strerror or exc}") from None
        self._task = asyncio.ensure_future(self._tick())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._write()  # the final state (stopped)

    def snapshot(self) -> ReceiverStatus:
        return snapshot(self.rec, self.clock)

    async def _tick(self) -> None:
        last_write = 0.0
        while True:
            now = time.monotonic()
            self.clock.sample(self.rec.server_end, now)
            if self.status_file is not None and now - last_write >= WRITE_EVERY:
                self._write()
                last_write = now
            await asyncio.sleep(SAMPLE_EVERY)

    def _write(self) -> None:
        if self.status_file is None:
            return
        try:
            write_status_file(self.status_file, self.snapshot())
        except OSError:
            pass  # a status file that cannot be written must not stop the archive

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            parts = head.split(b" ", 2)
            path = parts[1].decode("latin-1") if len(parts) > 1 else "/"
            st = self.snapshot()
            if path.split("?")[0] in ("/metrics", "/"):
                body, ctype, code = prometheus_text(st).encode(), \
                    "text/plain; version=0.0.4; charset=utf-8", "200 OK"
            elif path.split("?")[0] == "/status":
                body, ctype, code = (json.dumps(st.as_dict()) + "\n").encode(), \
                    "application/json", "200 OK"
            else:
                body, ctype, code = b"not found\n", "text/plain", "404 Not Found"
            writer.write(f"HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: "
                         f"{len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
