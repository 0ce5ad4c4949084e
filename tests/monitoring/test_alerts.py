"""AlertManager against a real local HTTP server: payload shapes, retry/backoff, dedup."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from signals.monitoring.alerts import (
    Alert,
    AlertManager,
    FileDedupStore,
    RedisDedupStore,
    slack_payload,
    telegram_payload,
)


class Recorder:
    """A webhook server on 127.0.0.1:<ephemeral> answering a scripted list of status codes."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.requests.append(
                    {"path": self.path, "content_type": self.headers.get("Content-Type"), "json": json.loads(body)}
                )
                status = recorder.statuses.pop(0) if recorder.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "Recorder":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _alert(subject: str = "signals-xgb/3") -> Alert:
    return Alert(
        kind="drift",
        subject=subject,
        title="Feature drift",
        message="7 features with PSI > 0.2 <b>&</b>",
        severity="critical",
        fields={"drifted_features": 7, "max_psi": 0.8123},
    )


def _manager(tmp_path: Path, sleeps: list[float] | None = None, **kw) -> AlertManager:
    sleeps = sleeps if sleeps is not None else []
    defaults = dict(timeout_s=2.0, retries=3, backoff_s=0.01, dedup_minutes=60, dedup_store=FileDedupStore(tmp_path / "dedup.json"))
    defaults.update(kw)
    return AlertManager(sleep=sleeps.append, **defaults)


def test_payload_shapes():
    s = slack_payload(_alert())
    assert set(s) == {"text", "blocks"} and "Feature drift" in s["text"]
    assert s["blocks"][0]["type"] == "header"
    t = telegram_payload(_alert(), "42")
    assert set(t) == {"chat_id", "text", "parse_mode"} and t["chat_id"] == "42" and t["parse_mode"] == "HTML"
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in t["text"]  # user text is escaped for Telegram's HTML mode


def test_posts_slack_and_telegram_json(tmp_path: Path):
    with Recorder() as srv:
        mgr = _manager(tmp_path, slack_webhook_url=srv.url + "/slack", telegram_webhook_url=srv.url + "/bot123/sendMessage", telegram_chat_id="99")
        result = mgr.send(_alert())
    assert result.delivered == {"slack": True, "telegram": True}
    by_path = {r["path"]: r for r in srv.requests}
    assert by_path["/slack"]["content_type"] == "application/json"
    assert by_path["/slack"]["json"] == slack_payload(_alert())
    assert by_path["/bot123/sendMessage"]["json"] == telegram_payload(_alert(), "99")


def test_http_500_then_success_is_retried_with_exponential_backoff(tmp_path: Path):
    sleeps: list[float] = []
    with Recorder([500, 500, 200]) as srv:
        result = _manager(tmp_path, sleeps, slack_webhook_url=srv.url + "/slack", backoff_s=0.5).send(_alert())
    assert result.delivered == {"slack": True}
    assert len(srv.requests) == 3
    assert sleeps == [0.5, 1.0]


def test_gives_up_after_retries_and_releases_the_dedup_key(tmp_path: Path):
    sleeps: list[float] = []
    with Recorder([500] * 10) as srv:
        mgr = _manager(tmp_path, sleeps, slack_webhook_url=srv.url + "/slack", retries=2)
        result = mgr.send(_alert())
        assert result.delivered == {"slack": False} and "HTTP 500 after 3 attempt(s)" in result.errors["slack"]
        assert "/slack" not in result.errors["slack"]  # the webhook path (a secret) is not echoed
        assert len(srv.requests) == 3
        srv.statuses = []  # the webhook recovers: the next check sends again (not deduplicated)
        again = mgr.send(_alert())
    assert again.delivered == {"slack": True} and not again.deduplicated


def test_client_error_is_not_retried(tmp_path: Path):
    with Recorder([400, 200]) as srv:
        result = _manager(tmp_path, slack_webhook_url=srv.url + "/slack").send(_alert())
    assert result.delivered == {"slack": False} and len(srv.requests) == 1


def test_unreachable_webhook_fails_cleanly(tmp_path: Path):
    with Recorder() as srv:
        url = srv.url
    # server closed: connection refused on every attempt
    result = _manager(tmp_path, slack_webhook_url=url + "/slack", retries=1).send(_alert())
    assert result.delivered == {"slack": False}


def test_dedup_window_suppresses_repeats_per_kind_and_subject(tmp_path: Path):
    now = [1_000_000.0]
    store = FileDedupStore(tmp_path / "state" / "dedup.json", clock=lambda: now[0])
    with Recorder() as srv:
        mgr = _manager(tmp_path, slack_webhook_url=srv.url + "/s", dedup_minutes=60, dedup_store=store)
        assert mgr.send(_alert()).sent
        assert mgr.send(_alert()).deduplicated  # same kind + subject within the hour
        assert mgr.send(_alert("signals-xgb/4")).sent  # another subject is another alert
        assert mgr.send(Alert(kind="accuracy", subject="signals-xgb/3", title="t", message="m")).sent
        now[0] += 61 * 60
        assert mgr.send(_alert()).sent  # window over
    assert len(srv.requests) == 4
    assert json.loads((tmp_path / "state" / "dedup.json").read_text())  # state persisted as JSON


def test_dedup_state_survives_a_new_manager(tmp_path: Path):
    with Recorder() as srv:
        assert _manager(tmp_path, slack_webhook_url=srv.url).send(_alert()).sent
        assert _manager(tmp_path, slack_webhook_url=srv.url).send(_alert()).deduplicated
    assert len(srv.requests) == 1


def test_no_webhook_logs_only(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    with caplog.at_level("WARNING", logger="signals.monitoring.alerts"):
        result = _manager(tmp_path).send(_alert())
    assert result.delivered == {} and not result.deduplicated
    assert result.no_channel and result.state == "no alert channel configured (logged only)"
    assert "Feature drift" in caplog.text and "no alert channel configured" in caplog.text
    again = _manager(tmp_path).send(_alert())  # a second check says the same, never "deduplicated"
    assert again.no_channel and not again.deduplicated


def test_telegram_without_chat_id_is_disabled(tmp_path: Path):
    mgr = _manager(tmp_path, telegram_webhook_url="http://127.0.0.1:9/x")
    assert mgr.channels() == {}


def test_from_settings_uses_file_state_without_redis(settings, tmp_path: Path):
    mgr = AlertManager.from_settings(settings, state_path=tmp_path / "d.json")
    assert isinstance(mgr.dedup_store, FileDedupStore)
    assert mgr.retries == settings.alerts.retries and mgr.dedup_minutes == settings.alerts.dedup_minutes


@pytest.mark.integration
def test_redis_dedup_store(redis_server_url: str, redis_prefix: str, settings, tmp_path: Path):
    import redis

    client = redis.Redis.from_url(redis_server_url)
    store = RedisDedupStore(client, redis_prefix)
    assert store.claim("drift:m/1", 60)
    assert not store.claim("drift:m/1", 60)
    assert client.pttl(f"{redis_prefix}:alerts:dedup:drift:m/1") > 50_000
    store.release("drift:m/1")
    assert store.claim("drift:m/1", 60)
    settings = settings.model_copy(update={"redis": settings.redis.model_copy(update={"prefix": redis_prefix})})
    mgr = AlertManager.from_settings(settings, redis_client=client)
    assert isinstance(mgr.dedup_store, RedisDedupStore)
