"""The synchronous receiver's C round (xlogtools/stream/_syncpump.c) on its own, over a socket
pair: what it writes, what it acknowledges, and where it hands over to the Python path.
(The real-server test is test_receive.py::test_synchronous_under_load_segments_identical.)"""
from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import pytest

from xlogtools.stream import syncpump
from xlogtools.stream.backend import encode_server, encode_xlogdata
from xlogtools.stream.messages import PrimaryKeepalive, StandbyStatusUpdate, encode

pytestmark = pytest.mark.skipif(not syncpump.AVAILABLE, reason="the C extension is not built "
                                "(or XLOGTOOLS_NO_C is set)")
SEG = 1 << 16
BASE = 5 * SEG  # the open segment's first LSN


def xlogdata(start: int, data: bytes, wal_end: int = 0) -> bytes:
    """What our walsender sends (the same bytes as PostgreSQL's)."""
    return encode_xlogdata(start, wal_end or start + len(data), 0, data)


def keepalive(wal_end: int, reply: bool) -> bytes:
    return encode_server(PrimaryKeepalive(wal_end, 0, reply))


def status(msg: bytes) -> tuple[int, int, int, int]:
    """(write, flush, apply, reply) of a standby status update: the bytes must be what the
    Python protocol code encodes for them (only the send time is the C round's own)."""
    assert len(msg) == 39
    w, f, a, t, r = struct.unpack(">QQQq?", msg[6:])
    assert msg == encode(StandbyStatusUpdate(w, f, a, t, r))
    return w, f, a, r


@pytest.fixture
def pair(tmp_path: Path):
    ours, server = socket.socketpair()
    ours.setblocking(False)
    fd = os.open(tmp_path / "seg.partial", os.O_RDWR | os.O_CREAT, 0o600)
    os.pwrite(fd, bytes(SEG), 0)
    yield ours, server, fd
    ours.close()
    server.close()
    os.close(fd)


def pump(ours: socket.socket, fd: int, buf: bytearray, have: int, pos: int, flushed: int,
         endpos: int = 0):
    from xlogtools.stream._syncpump import pump as c_pump
    return c_pump(ours.fileno(), buf, have, fd, BASE, SEG, pos, flushed, endpos)


def test_writes_fsyncs_and_acknowledges_a_batch(pair) -> None:
    ours, server, fd = pair
    pos = BASE + 100
    a, b = os.urandom(300), os.urandom(50)
    server.sendall(xlogdata(pos, a) + keepalive(pos + 300, False) + xlogdata(pos + 300, b, 9999999))
    buf = bytearray(1 << 12)
    stop, have, new, wal_end, unsent, err, at, *_ = pump(ours, fd, buf, 0, pos, pos)
    assert (stop, have, new, wal_end, unsent, err) == (syncpump.DRAINED, 0, pos + 350, 9999999,
                                                        b"", 0)
    assert os.pread(fd, 350, 100) == a + b and not any(os.pread(fd, 100, 0))
    assert status(server.recv(100)) == (pos + 350, pos + 350, 0, False)


def test_a_reply_request_alone_is_answered_with_the_old_position(pair) -> None:
    ours, server, fd = pair
    server.sendall(keepalive(BASE + 5000, True))
    stop, have, new, wal_end, unsent, *_ = pump(ours, fd, bytearray(4096), 0, BASE + 80,
                                                BASE + 72)
    assert (stop, have, new, wal_end) == (syncpump.DRAINED, 0, BASE + 80, BASE + 5000)
    assert status(server.recv(100)) == (BASE + 80, BASE + 72, 0, False)


def test_nothing_due_sends_nothing(pair) -> None:
    ours, server, fd = pair
    server.sendall(keepalive(BASE + 10, False))
    assert pump(ours, fd, bytearray(4096), 0, BASE + 8, BASE + 8)[:3] == (syncpump.DRAINED, 0,
                                                                          BASE + 8)
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.recv(100)


def test_partial_message_is_kept_for_the_next_round(pair) -> None:
    ours, server, fd = pair
    msg = xlogdata(BASE + 8, b"x" * 200)
    server.sendall(msg[:90])
    buf = bytearray(4096)
    stop, have, new, *_ = pump(ours, fd, buf, 0, BASE + 8, BASE + 8)
    assert (stop, have, new) == (syncpump.DRAINED, 90, BASE + 8)
    assert bytes(buf[:90]) == msg[:90]
    server.sendall(msg[90:])
    stop, have, new, *_ = pump(ours, fd, buf, have, BASE + 8, BASE + 8)
    assert (stop, have, new) == (syncpump.DRAINED, 0, BASE + 208)
    assert os.pread(fd, 200, 8) == b"x" * 200


@pytest.mark.parametrize("case", ["segment-end", "gap", "other-kind", "copydone", "too-big"])
def test_hands_over_to_python_before_what_it_does_not_handle(pair, case: str) -> None:
    ours, server, fd = pair
    pos = BASE + SEG - 64
    first = xlogdata(pos - 16, b"a" * 16)
    second = {"segment-end": xlogdata(pos, b"b" * 64),  # reaches the segment's end
              "gap": xlogdata(pos + 8, b"b" * 8),
              "other-kind": b"d\0\0\0\x06zz",
              "copydone": b"c\0\0\0\x04",
              "too-big": b"d" + struct.pack(">I", 5000) + b"w" * 20}[case]  # > the buffer
    buf = bytearray(64 if case == "too-big" else 4096)
    server.sendall(first + second)
    stop, have, new, wal_end, unsent, *_ = pump(ours, fd, buf, 0, pos - 16, pos - 16)
    assert stop == syncpump.FOR_PYTHON and new == pos
    assert bytes(buf[:have]) == second[:have] and have == min(len(second), len(buf) - len(first))
    assert os.pread(fd, 16, SEG - 80) == b"a" * 16 and not any(os.pread(fd, 64, SEG - 64))
    assert status(server.recv(100))[:2] == (pos, pos)  # what it did write is acknowledged


def test_endpos_and_end_of_file(pair) -> None:
    ours, server, fd = pair
    server.sendall(xlogdata(BASE + 8, b"e" * 40) + xlogdata(BASE + 48, b"f" * 40))
    buf = bytearray(4096)
    stop, have, new, *_ = pump(ours, fd, buf, 0, BASE + 8, BASE + 8, endpos=BASE + 30)
    assert (stop, new) == (syncpump.ENDPOS, BASE + 48)
    assert have == len(xlogdata(0, b"f" * 40))  # the rest stays for the Python path
    assert status(server.recv(100))[:2] == (BASE + 48, BASE + 48)
    server.close()  # (with the status unread, the close would be a reset: ECONNRESET)
    stop, have2, new, _, unsent, *_ = pump(ours, fd, buf, have, BASE + 48, BASE + 48)
    assert (stop, have2, new, unsent) == (syncpump.END_OF_FILE, 0, BASE + 88, b"")
    assert os.pread(fd, 80, 8) == b"e" * 40 + b"f" * 40


def test_a_write_error_names_the_call(pair, tmp_path: Path) -> None:
    ours, server, fd = pair
    ro = os.open(tmp_path / "seg.partial", os.O_RDONLY)
    try:
        server.sendall(xlogdata(BASE + 8, b"z" * 8))
        stop, _, new, _, _, err, at, *_ = pump(ours, ro, bytearray(4096), 0, BASE + 8, BASE + 8)
    finally:
        os.close(ro)
    assert (stop, new, at, err) == (syncpump.OS_ERROR, BASE + 8, "pwrite", 9)  # EBADF


def test_a_status_the_socket_cannot_take_is_returned_to_send_in_order(pair) -> None:
    ours, server, fd = pair
    for chunk in (1 << 16, 1 << 10, 1):  # fill our sending side to the last byte
        while True:
            try:
                ours.send(b"\0" * chunk)
            except BlockingIOError:
                break
    server.sendall(xlogdata(BASE + 8, b"q" * 24))
    stop, have, new, _, unsent, err, *_ = pump(ours, fd, bytearray(4096), 0, BASE + 8, BASE + 8)
    assert (stop, have, new, err) == (syncpump.DRAINED, 0, BASE + 32, 0)
    assert status(unsent)[:2] == (BASE + 32, BASE + 32)  # flushed, for the caller to send


def test_rounds_go_on_until_the_deadline(pair) -> None:
    """With a deadline, a commit arriving while the C loop waits is written, fsynced and
    acknowledged in a second round of the same call; the call returns at the deadline, each
    round having sent its own status update, and says how far is durable."""
    import threading
    import time

    ours, server, fd = pair
    pos = BASE + 8
    a, b = os.urandom(120), os.urandom(80)
    server.sendall(xlogdata(pos, a))
    later = threading.Timer(0.1, lambda: server.sendall(xlogdata(pos + 120, b)))
    later.start()
    t0 = time.monotonic()
    stop, have, new, _, unsent, err, at, rounds, flushed = pump_until(
        ours, fd, bytearray(4096), pos, deadline=t0 + 0.5)
    took = time.monotonic() - t0
    later.join()
    assert (stop, have, new, unsent, err, rounds, flushed) == \
        (syncpump.DRAINED, 0, pos + 200, b"", 0, 2, pos + 200)
    assert took >= 0.45  # it waited on to the deadline after the second round
    assert os.pread(fd, 200, 8) == a + b
    got = server.recv(200)
    assert [status(got[i:i + 39])[:2] for i in (0, 39)] == [(pos + 120,) * 2, (pos + 200,) * 2]


def test_rounds_stop_at_max_bytes_and_one_round_without_deadline(pair) -> None:
    ours, server, fd = pair
    pos = BASE + 8
    server.sendall(xlogdata(pos, os.urandom(100)))
    # max_bytes reached by the first round: no waiting for more, however far the deadline
    import time
    t0 = time.monotonic()
    res = pump_until(ours, fd, bytearray(4096), pos, deadline=t0 + 5, max_bytes=50)
    assert res[0] == syncpump.DRAINED and res[7] == 1 and time.monotonic() - t0 < 4
    server.sendall(xlogdata(pos + 100, os.urandom(10)))
    res = pump_until(ours, fd, bytearray(4096), pos + 100, deadline=None)
    assert res[0] == syncpump.DRAINED and res[7] == 1 and res[2] == pos + 110


def pump_until(ours: socket.socket, fd: int, buf: bytearray, pos: int, deadline: float | None,
               max_bytes: int = 0):
    from xlogtools.stream._syncpump import pump as c_pump
    return c_pump(ours.fileno(), buf, 0, fd, BASE, SEG, pos, pos, 0,
                  int(deadline * 1e6) if deadline is not None else 0, max_bytes)


def test_more_messages_than_one_write_takes_all_land_in_order(pair) -> None:
    """Consecutive XLogData are written together (up to 64 pieces per call, the rest in
    further calls): 200 small messages in one read all reach the file, in place."""
    ours, server, fd = pair
    pos = BASE + 8
    pieces = [os.urandom(1 + i % 37) for i in range(200)]
    wire, at = b"", pos
    for p in pieces:
        wire += xlogdata(at, p)
        at += len(p)
    server.sendall(wire)
    buf = bytearray(1 << 16)
    stop, have, new, *_ = pump(ours, fd, buf, 0, pos, pos)
    assert (stop, have, new) == (syncpump.DRAINED, 0, at)
    assert os.pread(fd, at - pos, 8) == b"".join(pieces)
    assert status(server.recv(100))[:2] == (at, at)


def test_a_failed_write_of_several_messages_keeps_them_all_for_python(pair, tmp_path: Path
                                                                      ) -> None:
    """The write of three pending messages fails: the position stays before the first one
    and all three (with the keepalive between them) stay in the buffer for the Python path;
    nothing is acknowledged."""
    ours, server, _fd = pair
    wire = (xlogdata(BASE + 8, b"a" * 8) + keepalive(BASE + 16, False)
            + xlogdata(BASE + 16, b"b" * 8) + xlogdata(BASE + 24, b"c" * 8))
    server.sendall(wire)
    ro = os.open(tmp_path / "seg.partial", os.O_RDONLY)
    buf = bytearray(4096)
    try:
        stop, have, new, _, unsent, err, at, *_ = pump(ours, ro, buf, 0, BASE + 8, BASE + 8)
    finally:
        os.close(ro)
    assert (stop, new, at, err, unsent) == (syncpump.OS_ERROR, BASE + 8, "pwrite", 9, b"")
    assert bytes(buf[:have]) == wire
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.recv(100)
