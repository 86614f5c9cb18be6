"""`dump --jobs N`: the segments split into ranges that worker processes decode, format and
write into part files; the main process writes the parts in order (text copied by the kernel,
Parquet parts stitched into one file, pqstitch.py) and checks the link between each range and
the next. Each record belongs to the range it starts in; where a link is broken, the rest is
read again sequentially, which stops exactly where one process would. For the formats made
from batches the commit times are a first pass in the workers too."""
from __future__ import annotations

import os
import sys
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generator, Iterator, Sequence

from ..errors import InputError
from ..lsn import Lsn
from ..parse.api import open_wal
from ..parse.endofwal import EndOfWal, EndReason
from ..parse.reader import WalReader
from ..parse.record import Record
from .progress import Progress
from .rows import CommitTimes
from .sequential import (DumpOptions, DumpResult, batch_commit_times, chunk_output,
                         dump_batches, dump_sequential, selection)
from .writers import CHUNK_RECORDS, Sink, format_batch

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor


@dataclass
class _Part:
    chunks: list[Any]
    records: int
    first_lsn: int | None
    first_prev: int | None
    last_lsn: int | None
    end_of_wal: EndOfWal | None


_WORKER_TIMES: CommitTimes | None = None  # set once per worker process (_init_worker)
_WORKER_DIR: str | None = None  # where workers write their part files


def _init_worker(times: CommitTimes | None, part_dir: str | None = None) -> None:
    global _WORKER_TIMES, _WORKER_DIR
    _WORKER_TIMES = times
    _WORKER_DIR = part_dir


def _work(args: tuple[list[str], DumpOptions, int, int | None, int, bool, int]) -> _Part:
    paths, opts, lo, until, timeline, batches, slot = args
    times = _WORKER_TIMES
    reader = open_wal(paths or None, start=max(lo, int(opts.start or 0)), end=opts.end,
                      timeline=timeline, until=until)
    if batches:
        return _work_batches(reader, opts, times, slot)
    chunks: list[Any] = []
    chunk: list[Record] = []
    n = 0
    first_lsn = first_prev = last_lsn = None
    for rec in reader:
        if first_lsn is None:
            first_lsn, first_prev = int(rec.lsn), int(rec.prev)
        last_lsn = int(rec.lsn)
        if opts.filter.active and not opts.filter(rec):
            continue
        chunk.append(rec)
        n += 1
        if len(chunk) >= CHUNK_RECORDS:
            chunks.append(_portable(chunk_output(chunk, opts, times)))
            chunk = []
    if chunk:
        chunks.append(_portable(chunk_output(chunk, opts, times)))
    return _Part(chunks, n, first_lsn, first_prev, last_lsn, reader.end_of_wal)


def _work_batches(reader: WalReader, opts: DumpOptions, times: Any, slot: int) -> _Part:
    """A range from the reader's batches into a part file that the main process copies into
    the sink (text) or stitches into the output (a Parquet file of its own, encoded here):
    neither process holds a range's output in memory.

    Text goes into the slot file `slot` of the part directory, written over from its start
    and never truncated: a slot is reused by the range after next, and pages of a RAM-backed
    file that stay allocated are only copied into, not allocated, zeroed and freed again for
    every range (with --jobs 2, that was more kernel time than one process's whole run)."""
    import tempfile

    if opts.format == "parquet":
        fd, part = tempfile.mkstemp(prefix="xlogtools-part-", dir=_WORKER_DIR)
        span = _Part([("parquet-file", part)], 0, None, None, None, None)
    else:
        part = os.path.join(_WORKER_DIR or tempfile.gettempdir(), f"xlogtools-slot-{slot}")
        fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o600)
        span = _Part([], 0, None, None, None, None)

    def outputs() -> Iterator[Any]:
        for batch in reader.batches():
            lsn = batch.column("lsn")
            if span.first_lsn is None:
                span.first_lsn, span.first_prev = lsn[0], batch.column("prev")[0]
            span.last_lsn = lsn[batch.n - 1]
            select = selection(batch, opts.filter)
            if select is not None and not select:
                continue
            span.records += batch.n if select is None else len(select)
            yield format_batch(batch, opts.format, times, opts.relation_names, select,
                               opts.bkp_details)

    try:
        if opts.format == "parquet":
            os.close(fd)
            psink = Sink("parquet", part, with_relation=opts.relation_names is not None)
            try:
                for out in outputs():
                    psink.write(out)
            finally:
                psink.close()
        else:
            size = 0
            with os.fdopen(fd, "r+b") as f:
                for out in outputs():
                    f.write(out)
                    size += len(out)
            span.chunks.append(("text-slot", part, size))
    except BaseException:
        os.unlink(part)
        raise
    span.end_of_wal = reader.end_of_wal
    return span


@dataclass
class _Commits:
    xids: Any  # array("I"): the range's commit records' xids, in record order
    times: Any  # array("q")
    first_lsn: int | None
    first_prev: int | None
    last_lsn: int | None
    end_of_wal: EndOfWal | None


def _commit_work(args: tuple[list[str], DumpOptions, int, int | None, int, bool]) -> _Commits:
    """The commit times of one range (the first pass of the batch formats, in a worker): its
    Transaction records only, as the one-process pass reads them; the range's first record
    (its link to the range before) is read on its own."""
    from ..parse.rmgr.ids import RM_XACT_ID
    from .commitindex import CommitIndex

    paths, opts, lo, until, timeline, _batches = args

    def range_reader() -> WalReader:
        return open_wal(paths or None, start=max(lo, int(opts.start or 0)), end=opts.end,
                        timeline=timeline, until=until)

    reader = range_reader()
    idx = CommitIndex()
    for batch in reader.batches(rmgr=RM_XACT_ID):
        idx.add_batch(batch)
    first_lsn = first_prev = last_lsn = None
    if reader.records_read and reader.last_record_lsn is not None:
        last_lsn = int(reader.last_record_lsn)
        head = next(iter(range_reader()), None)
        if head is not None:
            first_lsn, first_prev = int(head.lsn), int(head.prev)
    return _Commits(idx._xids, idx._times, first_lsn, first_prev, last_lsn, reader.end_of_wal)


def _parallel_commit_times(pool: Any, paths: Sequence[str], args: list[Any], opts: DumpOptions,
                           timeline: int) -> Any:
    """batch_commit_times() of the whole range from the ranges' workers: their commits joined
    in range order up to where one process would stop (damage at the end of a range, or a
    broken link to the next one, from where the rest is read sequentially)."""
    from .commitindex import CommitIndex

    idx = CommitIndex()
    prev_last: int | None = None
    for i, part in enumerate(pool.map(_commit_work, args)):
        if i > 0 and part.first_lsn is not None and part.first_prev != prev_last:
            rest = open_wal(list(paths) or None, start=Lsn(prev_last or 0), end=opts.end,
                            timeline=timeline)
            for batch in rest.batches():  # (its first record, at prev_last, is added twice:
                idx.add_batch(batch)       # the same xid and time, harmless)
            break
        idx._xids.extend(part.xids)
        idx._times.extend(part.times)
        if part.last_lsn is not None:
            prev_last = part.last_lsn
        eow = part.end_of_wal
        if eow is not None and eow.reason is not EndReason.END_LSN_REACHED:
            break
    return idx.finish()


def _portable(chunk: Any) -> Any:
    """Arrow batches travel between processes as IPC bytes; text as it is (str or UTF-8)."""
    if isinstance(chunk, (str, bytes)):
        return ("text", chunk)
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, chunk.schema) as w:
        w.write_batch(chunk)
    return ("arrow", sink.getvalue().to_pybytes())


def _part_root() -> str | None:
    """Where part files go: a RAM-backed /dev/shm when there is one (a part is written and read
    back once; on disk, text parts doubled the bytes written), else the temporary directory.
    At most jobs + 1 parts exist at a time."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _write_part(sink: Sink, chunk: Any) -> None:
    """Write a worker's chunk: text, IPC bytes, or the first `size` bytes of a text slot file
    (copied by the kernel to a file descriptor, else written from a mapping of it)."""
    if chunk[0] != "text-slot":
        sink.write(_unportable(chunk))
        return
    _kind, path, size = chunk
    if not size:
        return
    with open(path, "rb") as f:
        out = sink.binary_stream()
        if out is not None:  # in the kernel, from the slot's pages to the output
            from .pqstitch import copy_range

            if copy_range(f, out, 0, size) < size:
                raise InputError(f"a part file is shorter than its worker wrote: {path}",
                                 file=path)
            return
        import mmap

        with mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as m:
            view = memoryview(m)
            try:
                sink.write_utf8(view)
            finally:
                view.release()


def _unportable(chunk: Any) -> Any:
    kind, payload = chunk
    if kind == "arrow":
        import pyarrow as pa

        return pa.ipc.open_stream(payload).read_next_batch()
    return payload


def _ordered(pool: ProcessPoolExecutor, args: list[Any], ahead: int
             ) -> Generator[_Part, None, None]:
    """pool.map, but at most `ahead` ranges in flight: memory stays bounded when the writer
    is slower than the decoders."""
    pending: deque[Any] = deque()
    # range i writes its text into slot i % (ahead + 1): while range i is written out, the
    # ranges in flight are i + 1 .. i + ahead, whose slots are all others
    it = ((*a, i % (ahead + 1)) for i, a in enumerate(args))
    for a in it:
        pending.append(pool.submit(_work, a))
        if len(pending) >= ahead:
            break
    try:
        while pending:
            part = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(_work, nxt))
            yield part
    finally:
        # Stopped early (damage, a broken link): drop what has not started; the pool's own
        # shutdown then waits only for ranges already running (no racing shutdown at exit).
        for f in pending:
            f.cancel()


def dump_parallel(paths: Sequence[str], reader: WalReader, opts: DumpOptions, sink: Sink,
                   times: CommitTimes | None = None, need_times: bool = False,
                  batches: bool = True) -> DumpResult:
    """Write the range of `reader` with opts.jobs worker processes. batches: the workers
    format from the reader's batches (opts.format must be one of BATCH_FORMATS), else from
    Records; need_times: make the commit times (batch formats) here, a first pass in the
    workers."""
    seg_size = reader.seg_size
    # the segments of the timeline and of its ancestors (those before a switch are theirs)
    ancestry = {t for t, _b, _e in reader.source.expected_timelines(reader.timeline)}
    segs = sorted({s for t, s in reader.source.files if t in ancestry})
    first = max(int(reader.start), (min(segs) if segs else 0) * seg_size)
    last_seg = max(segs) if segs else first // seg_size
    if reader.end is not None:
        last_seg = min(last_seg, int(reader.end) // seg_size)
    nseg = last_seg - first // seg_size + 1
    per = max(1, min(8, nseg // (opts.jobs * 4) or 1))
    bounds = [first] + [s * seg_size for s in range(first // seg_size + per, last_seg + 1, per)]
    ranges = [(lo, bounds[i + 1] if i + 1 < len(bounds) else None) for i, lo in enumerate(bounds)]
    wopts = replace(opts, progress=False)
    args = [(list(paths), wopts, lo, until, reader.timeline, batches) for lo, until in ranges]
    if len(ranges) < 2:
        if need_times:
            times = batch_commit_times(open_wal(list(paths) or None, start=opts.start,
                                                 end=opts.end, timeline=reader.timeline))
        if batches:
            return dump_batches(reader, opts, sink, times)
        return dump_sequential(paths, reader, opts, sink, times=times)
    progress = Progress("dump", opts.progress, first, (last_seg + 1) * seg_size)
    import tempfile
    from concurrent.futures import ProcessPoolExecutor

    stitcher = None
    try:
        with tempfile.TemporaryDirectory(prefix="xlogtools-dump-", dir=_part_root()) as part_dir:
            if need_times:
                with ProcessPoolExecutor(max_workers=opts.jobs) as pool:
                    times = _parallel_commit_times(pool, paths, args, opts, reader.timeline)
                _phase("commit times")
            if batches and opts.format == "parquet":
                from .pqstitch import Stitcher

                sink.detach()
                try:
                    stitcher = Stitcher(str(opts.output))
                except OSError as exc:
                    raise InputError(f"could not create \"{opts.output}\": {exc.strerror}",
                                     file=opts.output) from exc
            with ProcessPoolExecutor(max_workers=opts.jobs, initializer=_init_worker,
                                     initargs=(times, part_dir)) as pool:
                result = _parallel_parts(pool, paths, reader, opts, sink, times, args, ranges,
                                         progress, stitcher, part_dir, batches)
            if stitcher is not None:
                stitcher.finish()
                stitcher = None
            _phase("parts written")
            return result
    finally:
        if stitcher is not None:  # an error: the file is left without its footer
            stitcher.abort()
        progress.finish()


def _parallel_parts(pool: Any, paths: Sequence[str], reader: WalReader, opts: DumpOptions,
                    sink: Sink, times: Any, args: list[Any], ranges: list[Any],
                    progress: Progress, stitcher: Any, part_dir: str,
                    batches: bool) -> DumpResult:
    """The ranges' parts written in order (into the stitched Parquet file, or the sink)."""
    n = 0
    prev_last: int | None = None
    parts = _ordered(pool, args, ahead=opts.jobs + 1)
    try:
        for i, part in enumerate(parts):
            if i > 0 and part.first_lsn is not None and part.first_prev != prev_last:
                # A broken link at a range boundary: read on sequentially from the last good
                # record, which stops exactly where one process would.
                parts.close()
                rest = open_wal(list(paths) or None, start=Lsn(prev_last or 0), end=opts.end,
                                timeline=reader.timeline)
                if stitcher is not None:  # into one more part, stitched
                    part_path = os.path.join(part_dir, "rest.parquet")
                    psink = Sink("parquet", part_path,
                                 with_relation=opts.relation_names is not None)
                    try:
                        result = dump_batches(rest, opts, psink, times, skip_first=True, done=n)
                    finally:
                        psink.close()
                    stitcher.add(part_path)
                    os.unlink(part_path)
                    return result
                if batches:
                    return dump_batches(rest, opts, sink, times, skip_first=True, done=n)
                return dump_sequential(paths, rest, opts, sink, skip_first=True, done=n,
                                        times=times)
            for c in part.chunks:
                if c[0] == "parquet-file":
                    try:
                        stitcher.add(c[1])
                    finally:
                        os.unlink(c[1])
                else:
                    _write_part(sink, c)
            n += part.records
            if part.last_lsn is not None:
                prev_last = part.last_lsn
            progress.update(ranges[i][1] or ranges[i][0], n)
            eow = part.end_of_wal
            if eow is not None and eow.reason is not EndReason.END_LSN_REACHED:
                if eow.last_record_lsn is None and prev_last is not None:
                    # stopped before the range's first record: the last record is the one
                    # the previous range read last (as one process says)
                    eow = replace(eow, last_record_lsn=Lsn(prev_last))
                return DumpResult(n, eow)
            if i == len(ranges) - 1:
                return DumpResult(n, eow)
    finally:
        parts.close()
    return DumpResult(n, None)


_T0 = time.monotonic()


def _phase(what: str) -> None:
    """XLOGTOOLS_DUMP_PHASES=1: when each phase of `dump --jobs` ended, on stderr."""
    if os.environ.get("XLOGTOOLS_DUMP_PHASES"):
        print(f"xlogtools: {time.monotonic() - _T0:.3f}s {what}", file=sys.stderr)
