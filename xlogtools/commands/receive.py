"""`xlogtools receive`: stream WAL from a server into an archive directory, like
pg_receivewal (same options), verifying every record as it arrives."""
from __future__ import annotations

import click

from ..errors import UsageError
from ..lsn import Lsn
from . import LSN, handled


@click.command()
@click.option("-D", "--directory", required=True, type=click.Path(file_okay=False),
              help="Write the WAL files into this directory (it must exist).")
@click.option("-d", "--dbname", "conninfo", metavar="CONNSTR",
              help="Connection string (key=value or postgresql:// URI); the database name in "
                   "it is ignored, as pg_receivewal does.")
@click.option("-h", "--host", help="Database server host or socket directory.")
@click.option("-p", "--port", help="Database server port.")
@click.option("-U", "--username", help="Connect as this user.")
@click.option("-w", "--no-password", is_flag=True, help="Never prompt for a password.")
@click.option("-W", "--password", "password_prompt", is_flag=True,
              help="Prompt for a password before connecting.")
@click.option("-S", "--slot", help="Use this physical replication slot.")
@click.option("--create-slot", is_flag=True, help="Create the slot named by --slot, then exit.")
@click.option("--drop-slot", is_flag=True, help="Drop the slot named by --slot, then exit.")
@click.option("--if-not-exists", is_flag=True,
              help="With --create-slot: no error if the slot exists already.")
@click.option("--synchronous", is_flag=True,
              help="Flush (fsync) and report after every write, so this receiver can be a "
                   "synchronous standby (synchronous_standby_names = its application_name).")
@click.option("-s", "--status-interval", type=click.IntRange(min=0), default=10,
              show_default=True, metavar="SECS",
              help="Seconds between status updates to the server (0: only when asked).")
@click.option("-E", "--endpos", type=LSN,
              help="Stop (exit 0) once WAL up to this LSN has been received and flushed.")
@click.option("-n", "--no-loop", is_flag=True,
              help="Exit with an error on a lost connection instead of reconnecting.")
@click.option("-Z", "--compress", metavar="METHOD[:LEVEL]",
              help="Compress completed segments: gzip, lz4 or zstd (or a gzip level 0-9).")
@click.option("--no-sync", is_flag=True, help="Never fsync (for tests only: unsafe).")
@click.option("--fsync-interval", type=click.IntRange(min=1), metavar="MS",
              help="Flush (fsync) at most every MS milliseconds and report to the server only "
                   "what is flushed, acknowledging each write at once: a loss window of MS on "
                   "a crash of this machine (for synchronous_commit=remote_write standbys and "
                   "asynchronous archives).")
@click.option("--metrics", metavar="[HOST:]PORT",
              help="Serve Prometheus metrics at http://HOST:PORT/metrics (HOST default "
                   "127.0.0.1; /status gives the same as JSON).")
@click.option("--status-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="Write the receiver's status as JSON to PATH every second (replaced "
                   "atomically).")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Decode every record as it arrives (CRC, prev-link chain); stop at the "
                   "first bad one.")
@click.option("--status/--no-status", "status_line", default=None,
              help="Show a status line (position, lag, rate); default: when stderr is a "
                   "terminal.")
@click.option("-v", "--verbose", is_flag=True, help="Report progress on stderr.")
@handled
def receive(directory: str, conninfo: str | None, host: str | None, port: str | None,
            username: str | None, no_password: bool, password_prompt: bool, slot: str | None,
            create_slot: bool, drop_slot: bool, if_not_exists: bool, synchronous: bool,
            status_interval: int, endpos: Lsn | None, no_loop: bool, compress: str | None,
            no_sync: bool, fsync_interval: int | None, metrics: str | None,
            status_file: str | None, verify: bool, status_line: bool | None,
            verbose: bool) -> None:
    """Stream WAL from a server into DIR, as pg_receivewal does.

    Segment files get PostgreSQL's names; the one being written is SEG.partial (padded to
    the segment size) until complete. Streaming resumes after the newest segment in DIR,
    else at the slot's restart_lsn (15+), else at the server's current position. It follows
    timeline switches (writing the history files) and reconnects with backoff unless
    --no-loop. SIGINT or SIGTERM: flush, fsync, report to the server and exit 0.

    \b
    Example:
      xlogtools receive -d "host=db1 user=rep application_name=arch1" -D /srv/wal \\
          -S arch1 --synchronous
    """
    from ..stream.receiving import run_receiver
    from ..stream.recvopts import ReceiveOptions, parse_compression

    if no_password and password_prompt:
        raise UsageError("cannot use --no-password together with --password")
    method, level = parse_compression(compress)
    opts = ReceiveOptions(directory=directory, conninfo=conninfo, host=host, port=port,
                          user=username, password_prompt=password_prompt, slot=slot,
                          create_slot=create_slot, drop_slot=drop_slot,
                          if_not_exists=if_not_exists, synchronous=synchronous,
                          status_interval=float(status_interval), endpos=endpos,
                          no_loop=no_loop, compression=method, compression_level=level,
                          verify=verify, sync=not no_sync, verbose=verbose,
                          status_line=status_line,
                          fsync_interval=fsync_interval / 1000 if fsync_interval else None,
                          metrics=metrics, status_file=status_file)
    run_receiver(opts)
