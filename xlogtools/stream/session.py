"""One walsender client after the TCP accept: startup (TLS, the startup packet, SCRAM or
trust), then the replication commands, whose START_REPLICATION `walstream.WalStreamer` runs.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import ssl
from typing import Any, cast

from .backend import (BYTEAOID, FEATURE_NOT_SUPPORTED, INT8OID, INVALID_AUTHORIZATION,
                      INVALID_PASSWORD, TEXTOID, UNDEFINED_FILE, CancelRequest, GSSENCRequest,
                      error_response, result_set, server_parameters)
from .replcommands import (CommandError, EmptyCommand, IdentifySystem, ReadReplicationSlot, Show,
                           StartReplication, TimelineHistory, parse_command)
from .scram import ScramError, ScramExchange, ScramVerifier
from .messages import (AuthenticationOk, AuthenticationSASL, AuthenticationSASLContinue,
                       AuthenticationSASLFinal, BackendKeyData, ConnectionClosed,
                       EmptyQueryResponse, NegotiateProtocolVersion, Query, ReadyForQuery,
                       SASLInitialResponse, SASLResponse, SSLRequest, SSLResponse, StartupMessage,
                       Terminate)
from .sessionio import Drop, SessionIO, peer_is_loopback
from .walstream import WalStreamer

log = logging.getLogger("xlogtools.serve")

_TRUE = {"true", "on", "yes", "1"}


class Session(SessionIO):
    """`await run()`: startup, then commands until the client leaves (Drop)."""

    # -- phases -------------------------------------------------------------------------------
    async def run(self) -> None:
        await asyncio.wait_for(self.startup(), 60.0)
        self.st.state = "idle"
        await self.command_loop()

    async def startup(self) -> None:
        while True:
            ev = await self.next_event(None)
            if isinstance(ev, SSLRequest) and self.server.ssl_context is not None \
                    and not self.st.ssl:
                # Stop reading before answering: the client's ClientHello follows the 'S' at
                # once and must reach the TLS layer, not the plain stream's buffer.
                # (typeshed's StreamWriter.transport is a WriteTransport; it is a socket's)
                cast(asyncio.Transport, self.writer.transport).pause_reading()
                self.send(SSLResponse(True))  # 'S', then the TLS handshake on this socket
                await self.drain()
                try:
                    await asyncio.wait_for(self.writer.start_tls(self.server.ssl_context),
                                           max(self.opts.timeout, 10.0) or None)
                except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
                    log.info("client #%d: TLS handshake failed: %s", self.st.id, exc)
                    raise Drop() from None
                self.st.ssl = True
                continue
            if isinstance(ev, (SSLRequest, GSSENCRequest)):
                self.send(SSLResponse(False))  # 'N': no TLS (no --ssl-cert), no GSSAPI
                await self.drain()
                continue
            if isinstance(ev, CancelRequest):
                raise Drop()  # walsenders have nothing to cancel
            if isinstance(ev, ConnectionClosed):
                raise Drop()
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
        raise Drop()

    async def authenticate(self, user: str) -> None:
        if self.opts.trust:
            peer = self.writer.get_extra_info("peername")
            if not peer or not peer_is_loopback(peer[0]):
                self.fatal(INVALID_AUTHORIZATION, f"no trust for host \"{peer and peer[0]}\"")
            return
        users = self.opts.users or {}
        verifier = users.get(user)
        exchange = ScramExchange(user, verifier or ScramVerifier.mock(user,
                                                                     self.server.mock_secret),
                                 known=verifier is not None)
        self.send(AuthenticationSASL((ScramExchange.MECHANISM,)))
        await self.drain()
        try:
            ev = await self.next_event(None)
            if not isinstance(ev, SASLInitialResponse):
                raise Drop()
            self.send(AuthenticationSASLContinue(exchange.first(ev.mechanism, ev.data)))
            await self.drain()
            ev = await self.next_event(None)
            if not isinstance(ev, SASLResponse):
                raise Drop()
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
                raise Drop()
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
            end = self.server.end_lsn(tli)
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
            content = arch.history_bytes(p)
            self.send(*result_set([("filename", TEXTOID), ("content", BYTEAOID)],
                                  [(name.encode(), content)], "TIMELINE_HISTORY"))
        elif isinstance(cmd, ReadReplicationSlot):
            # No slots here: NULLs, as walsender answers for a slot that does not exist.
            self.send(*result_set([("slot_type", TEXTOID), ("restart_lsn", TEXTOID),
                                   ("restart_tli", INT8OID)], [(None, None, None)],
                                  "READ_REPLICATION_SLOT"))
        elif isinstance(cmd, StartReplication):
            await WalStreamer(self).start_replication(cmd)
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


__all__ = ["Session"]
