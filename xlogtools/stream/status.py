"""What the walsender's status view shows: a client's state (ClientStatus), the relay's upstream
connection (UpstreamStatus), and the status dict, text and file built from them; `iso_time`
is the time format of all of them.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..lsn import Lsn


def iso_time(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


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
    ssl: bool = False

    def as_json(self, archive_end: int, upstream_end: int | None = None) -> dict[str, Any]:
        out = {"id": self.id, "peer": self.peer, "user": self.user,
               "application_name": self.application_name, "state": self.state,
               "timeline": self.timeline, "sent_lsn": str(Lsn(self.sent)),
               "write_lsn": str(Lsn(self.write)), "flush_lsn": str(Lsn(self.flush)),
               "replay_lsn": str(Lsn(self.apply)),
               "sent_lag_bytes": max(0, archive_end - self.sent) if archive_end else None,
               "flush_lag_bytes": max(0, self.sent - self.flush) if self.flush else None,
               "replay_lag_bytes": max(0, self.sent - self.apply) if self.apply else None,
               "connected_at": iso_time(self.connected_at),
               "last_reply": iso_time(self.last_reply) if self.last_reply else None,
               "ssl": self.ssl, "note": self.note}
        if upstream_end is not None:
            # relay mode: how far the client is behind the upstream server (what it holds for
            # sure: its flush position, else its write position, else what we sent)
            held = self.flush or self.write or self.sent
            out["upstream_lag_bytes"] = max(0, upstream_end - held) if held else None
        return out


@dataclass
class UpstreamStatus:
    """The upstream connection as the status view shows it (updated by the receiver's hook)."""

    server: str  # host:port of the connection string (the first one), or the one connected
    user: str
    application_name: str
    slot: str | None
    # starting | connecting | connected | streaming | disconnected | stopped
    state: str = "starting"
    timeline: int = 0
    received: int = 0
    flushed: int = 0
    server_end: int = 0
    since: float = field(default_factory=time.time)
    last_error: str = ""
    disconnects: int = 0
    ever_streamed: bool = False

    @property
    def end(self) -> int:
        """The upstream's WAL position as last known: what the clients' lag is measured to."""
        return max(self.server_end, self.flushed)

    def as_json(self) -> dict[str, Any]:
        return {"server": self.server, "user": self.user,
                "application_name": self.application_name, "slot": self.slot,
                "state": self.state, "since": iso_time(self.since), "timeline": self.timeline,
                "received_lsn": str(Lsn(self.received)), "flushed_lsn": str(Lsn(self.flushed)),
                "server_lsn": str(Lsn(self.server_end)) if self.server_end else None,
                "lag_bytes": max(0, self.server_end - self.flushed) if self.server_end else None,
                "disconnects": self.disconnects, "last_error": self.last_error or None}

    def text(self) -> str:
        line = (f"upstream {self.server} {self.state} tli {self.timeline} received "
                f"{Lsn(self.received)} flushed {Lsn(self.flushed)}")
        if self.server_end:
            line += f" (upstream at {Lsn(self.server_end)}, " \
                    f"{max(0, self.server_end - self.flushed)} B behind)"
        if self.state != "streaming" and self.last_error:
            line += f" (last error: {self.last_error})"
        return line


def server_status(directory: Any, timeline: int | None, end: int,
                  upstream: UpstreamStatus | None, clients: list[ClientStatus]) -> dict[str, Any]:
    """The status dict of a walsender over `directory` whose WAL ends at `end` (0: no WAL)."""
    upstream_end = upstream.end if upstream is not None else None
    out: dict[str, Any] = {"time": iso_time(time.time()), "directory": str(directory),
                           "timeline": timeline, "archive_end_lsn": str(Lsn(end))}
    if upstream is not None:
        out["upstream"] = upstream.as_json()
    out["clients"] = [c.as_json(end, upstream_end) for c in clients]
    return out


def status_text(st: dict[str, Any], upstream: UpstreamStatus | None) -> str:
    """The log lines of a status dict (server_status)."""
    lines = [f"archive end {st['archive_end_lsn']} (timeline {st['timeline']}), "
             f"{len(st['clients'])} client(s)"]
    if upstream is not None:
        lines.append("  " + upstream.text())
    for c in st["clients"]:
        up = f", {c['upstream_lag_bytes']} B behind upstream" \
            if c.get("upstream_lag_bytes") is not None else ""
        lines.append(f"  #{c['id']} {c['application_name'] or '-'} {c['peer']} {c['state']} "
                     f"tli {c['timeline']} sent {c['sent_lsn']} write {c['write_lsn']} "
                     f"flush {c['flush_lsn']} replay {c['replay_lsn']} "
                     f"lag {c['sent_lag_bytes']} B{up}"
                     + (f" ({c['note']})" if c['note'] else ""))
    return "\n".join(lines)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, tmp_prefix: str = "") -> None:
    """Replace `path` with `obj` as JSON: written to a temporary file beside it (its name,
    after `tmp_prefix`, with ".tmp"), then renamed over it, so a reader sees the old content
    or the new, never a part."""
    p = Path(path)
    tmp = p.with_name(f"{tmp_prefix}{p.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, p)


__all__ = ["ClientStatus", "UpstreamStatus", "iso_time", "server_status", "status_text",
           "write_json_atomic"]
