"""`xlogtools serve`: a walsender that streams an archive directory to standbys."""
from __future__ import annotations

import getpass
import os

import click

from ..errors import UsageError
from . import handled


@click.command()
@click.option("-D", "--directory", required=True, type=click.Path(file_okay=False),
              help="Archive directory: plain, .partial and compressed segments, history files.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("-p", "--port", type=click.IntRange(0, 65535), default=5432, show_default=True,
              help="Port to listen on (0: any free port, printed at start).")
@click.option("--auth", "auth_file", type=click.Path(dir_okay=False),
              help="Users file: lines of name:SCRAM-SHA-256$... (see --add-user).")
@click.option("--trust", is_flag=True,
              help="No authentication (accepted only with a loopback --host).")
@click.option("--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True,
              metavar="SECS", help="Drop a client silent this long (wal_sender_timeout; 0: never).")
@click.option("--status-file", type=click.Path(dir_okay=False),
              help="Write the clients' status as JSON to this file every second.")
@click.option("--status-interval", type=click.FloatRange(min=0), default=10.0,
              show_default=True, metavar="SECS", help="Log the status text this often (0: never).")
@click.option("--poll-interval", type=click.FloatRange(min=0.05), default=0.5,
              show_default=True, metavar="SECS", help="Look for new WAL in DIR this often.")
@click.option("--upstream", metavar="CONNSTR",
              help="Relay mode: receive WAL from this server into DIR (as `xlogtools receive` "
                   "does) and send it on to clients as soon as it is durable.")
@click.option("-S", "--slot", metavar="NAME",
              help="With --upstream: stream through this physical replication slot.")
@click.option("--create-slot", is_flag=True,
              help="With --upstream and --slot: create the slot if it does not exist yet.")
@click.option("--ssl-cert", type=click.Path(dir_okay=False, exists=True),
              help="PEM server certificate (chain): TLS is offered to clients (sslmode).")
@click.option("--ssl-key", type=click.Path(dir_okay=False, exists=True),
              help="Private key of --ssl-cert (default: in the --ssl-cert file).")
@click.option("--add-user", metavar="NAME",
              help="Add NAME to the --auth file (password from $XLOGTOOLS_PASSWORD or a "
                   "prompt), then exit.")
@click.option("-v", "--verbose", is_flag=True, help="Log every connection and command.")
@handled
def serve(directory: str, host: str, port: int, auth_file: str | None, trust: bool,
          timeout: float, status_file: str | None, status_interval: float, poll_interval: float,
          upstream: str | None, slot: str | None, create_slot: bool, ssl_cert: str | None,
          ssl_key: str | None, add_user: str | None, verbose: bool) -> None:
    """Serve the WAL of DIR over the streaming replication protocol, as a primary's
    walsender would: standbys (primary_conninfo) and pg_receivewal connect to it.

    \b
    Example:
      xlogtools serve -D /archive --auth users.txt --add-user standby
      xlogtools serve -D /archive --port 5499 --auth users.txt
      # on the standby: primary_conninfo = 'host=archive port=5499 user=standby password=...'
      # relay: follow db1 through slot relay1, serve its WAL as it arrives
      xlogtools serve -D /archive --port 5499 --auth users.txt \\
          --upstream "host=db1 user=rep application_name=relay1" -S relay1 --create-slot

    With --upstream, an upstream that cannot be reached (at start too) is retried with
    backoff while DIR is served; a refusal (authentication, pg_hba, a missing slot) or
    another cluster's WAL in DIR ends serve with exit 1.
    """
    from ..stream.sender import ServeOptions
    from ..stream.serving import serve_archive
    from ..stream.users import add_user as add_user_fn

    if add_user:
        if not auth_file:
            raise UsageError("--add-user needs --auth FILE")
        pw = os.environ.get("XLOGTOOLS_PASSWORD") or getpass.getpass(f"Password for {add_user}: ")
        add_user_fn(auth_file, add_user, pw)
        click.echo(f"added user \"{add_user}\" to {auth_file}", err=True)
        return
    opts = ServeOptions(directory, host=host, port=port, trust=trust, timeout=timeout,
                        status_file=status_file, status_interval=status_interval,
                        poll_interval=poll_interval, ssl_cert=ssl_cert, ssl_key=ssl_key)
    serve_archive(opts, auth_file=auth_file, upstream=upstream, slot=slot,
                  create_slot=create_slot, verbose=verbose,
                  ready=lambda sender: click.echo(
                      f"xlogtools serve: listening on {host}:{sender.port}", err=True))
