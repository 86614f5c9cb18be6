"""The replication slot of a receiver: --create-slot / --drop-slot (one-shot commands),
ensure_slot (a relay's: create it unless it exists, then stream), and reading it
(READ_REPLICATION_SLOT, 15+) for where to start.
"""
from __future__ import annotations

import logging

from .connection import Connection
from .connerrors import ServerError
from .protocol import SlotInfo, create_slot_command, drop_slot_command
from .recvopts import ReceiveError, ReceiveOptions

log = logging.getLogger("xlogtools.stream")


class Slots:
    """The slot commands of `options` (`options.slot` names the slot)."""

    def __init__(self, options: ReceiveOptions) -> None:
        self.opts = options
        self.ready = False  # ensure() created it or found it

    async def read(self, conn: Connection) -> SlotInfo | None:
        """The slot as READ_REPLICATION_SLOT shows it (None: no slot, or before 15); raises
        ReceiveError when it is missing or not physical."""
        slot_info: SlotInfo | None = None
        if self.opts.slot and conn.server_version >= 150000:
            slot_info = SlotInfo.from_result(
                await conn.query(f"READ_REPLICATION_SLOT {self.opts.slot}"))
            if slot_info.slot_type is None:
                raise ReceiveError(f"replication slot \"{self.opts.slot}\" does not exist")
            if slot_info.slot_type != "physical":
                raise ReceiveError(f"cannot use replication slot \"{self.opts.slot}\": it is "
                                   f"{slot_info.slot_type}, a physical slot is needed")
        return slot_info

    async def command(self, conn: Connection) -> str:
        slot = self.opts.slot
        assert slot is not None
        if self.opts.drop_slot:
            await conn.query(drop_slot_command(slot))
            log.info("dropped replication slot \"%s\"", slot)
            return "slot-dropped"
        try:
            await conn.query(create_slot_command(slot, conn.server_version))
            log.info("created replication slot \"%s\"", slot)
        except ServerError as exc:
            if exc.sqlstate == "42710" and self.opts.if_not_exists:
                log.info("replication slot \"%s\" exists already", slot)
            else:
                raise ReceiveError(str(exc)) from None
        return "slot-created"

    async def ensure(self, conn: Connection) -> None:
        """Create the slot unless it exists (serve --create-slot), then stream through it."""
        slot = self.opts.slot
        assert slot is not None
        try:
            await conn.query(create_slot_command(slot, conn.server_version))
            log.info("created replication slot \"%s\"", slot)
        except ServerError as exc:
            if exc.sqlstate != "42710":
                raise ReceiveError(str(exc)) from None
        self.ready = True


__all__ = ["Slots"]
