"""Local-port and health-check helpers for starting a server subprocess (tests, benchmarks)."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now (for servers, or a Redis that is 'down')."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """True when ``host:port`` cannot be bound because something already listens there.

    Binds with ``SO_REUSEADDR`` like uvicorn does, so a port in TIME_WAIT counts as free.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def wait_healthy(
    url: str, proc: subprocess.Popen, log_path: Path | None = None, timeout: float = 90.0, what: str = "server"
) -> None:
    """Poll ``{url}/health`` until it answers 200; raise with the server's log if it exits or times out."""

    def tail() -> str:
        return f":\n{log_path.read_text()[-4000:]}" if log_path is not None and log_path.is_file() else ""

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}{tail()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{what} not healthy after {timeout:.0f}s{tail()}")
