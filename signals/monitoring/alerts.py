"""Alerts to Slack and Telegram webhooks, with retry, backoff and de-duplication.

* Slack (incoming webhook): ``{"text": ..., "blocks": [header, section, context]}``.
* Telegram (``https://api.telegram.org/bot<token>/sendMessage``):
  ``{"chat_id": ..., "text": ..., "parse_mode": "HTML"}`` (text HTML-escaped).
* Delivery: stdlib ``urllib``; each POST has ``alerts.timeout_s``; a network error, a
  timeout, HTTP 429 or any 5xx is retried up to ``alerts.retries`` more times, waiting
  ``backoff_s``, ``2 * backoff_s``, ``4 * backoff_s``, ... between attempts. Other 4xx answers are not retried
  (the request itself is wrong).
* De-duplication: the key is ``kind:subject`` (e.g. ``drift:signals-xgb/3``). Within
  ``alerts.dedup_minutes`` of the last delivered alert with the same key, a new one is only
  logged. The state lives in Redis (``SET key NX PX``, atomic across processes) when a
  client is given, otherwise in a local JSON file written atomically under a file lock.
  The key is claimed before sending and released again when no channel accepted the
  alert, so a failed delivery is retried by the next check instead of being swallowed.
* No webhook configured: the alert is logged (WARNING), nothing is sent and no de-duplication
  key is claimed (``AlertResult.no_channel``; the CLI says "no alert channel configured").
"""

from __future__ import annotations

import html
import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from filelock import FileLock

from signals.core.errors import SignalsError
from signals.core.io import atomic_write_json
from signals.core.redaction import redact_url

if TYPE_CHECKING:  # pragma: no cover
    from signals.settings.model import Settings

log = logging.getLogger(__name__)

DEFAULT_STATE_PATH = Path("data") / "alerts" / "dedup.json"
SEVERITY_EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


class AlertDeliveryError(SignalsError):
    """A webhook did not accept the alert after all retries."""


@dataclass
class Alert:
    kind: str  # drift | accuracy | staleness | retrain | ...
    subject: str  # what it is about: model name/version, a feature, ...
    title: str
    message: str
    severity: str = "warning"  # info | warning | critical
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        return f"{self.kind}:{self.subject}"

    def plain_text(self) -> str:
        lines = [f"[{self.severity.upper()}] {self.title}", self.message]
        lines += [f"{k}: {_fmt(v)}" for k, v in self.fields.items()]
        return "\n".join(line for line in lines if line)


@dataclass
class AlertResult:
    key: str
    deduplicated: bool = False
    delivered: dict[str, bool] = field(default_factory=dict)  # channel -> accepted
    errors: dict[str, str] = field(default_factory=dict)
    no_channel: bool = False  # no webhook configured: logged only, nothing claimed or sent

    @property
    def state(self) -> str:
        """One plain word for a person: what happened to this alert."""
        if self.no_channel:
            return "no alert channel configured (logged only)"
        if self.deduplicated:
            return "already sent within the de-duplication window"
        return "sent" if self.sent else "FAILED"

    @property
    def sent(self) -> bool:
        return any(self.delivered.values())


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# --------------------------------------------------------------------------- payloads
def slack_payload(alert: Alert) -> dict[str, Any]:
    emoji = SEVERITY_EMOJI.get(alert.severity, "")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": alert.message or " "}},
    ]
    if alert.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{_fmt(v)}"} for k, v in list(alert.fields.items())[:10]],
            }
        )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"{emoji} {alert.severity} | {alert.dedup_key}"}]})
    return {"text": f"{emoji} {alert.title}: {alert.message}".strip(), "blocks": blocks}


def telegram_payload(alert: Alert, chat_id: str) -> dict[str, Any]:
    lines = [f"<b>{html.escape(alert.title)}</b>", html.escape(alert.message)]
    lines += [f"<b>{html.escape(str(k))}</b>: {html.escape(_fmt(v))}" for k, v in alert.fields.items()]
    return {"chat_id": chat_id, "text": "\n".join(line for line in lines if line), "parse_mode": "HTML"}


# --------------------------------------------------------------------------- dedup state
class DedupStore(Protocol):
    def claim(self, key: str, ttl_s: float) -> bool:
        """True (and remember the key for ``ttl_s``) unless it was claimed within its window."""

    def release(self, key: str) -> None: ...


class FileDedupStore:
    """Key -> expiry (epoch seconds) in a JSON file; atomic writes under a file lock."""

    def __init__(self, path: str | Path = DEFAULT_STATE_PATH, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock

    def _lock(self):

        self.path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path) + ".lock", timeout=10)

    def _read(self) -> dict[str, float]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text() or "{}")
            return {str(k): float(v) for k, v in data.items()}
        except (ValueError, AttributeError):
            log.warning("alert dedup state %s is unreadable; starting afresh", self.path)
            return {}

    def claim(self, key: str, ttl_s: float) -> bool:
        with self._lock():
            now = self.clock()
            state = {k: v for k, v in self._read().items() if v > now}  # drop expired keys
            if key in state:
                return False
            state[key] = now + ttl_s
            atomic_write_json(state, self.path)
            return True

    def release(self, key: str) -> None:
        with self._lock():
            state = self._read()
            if state.pop(key, None) is not None:
                atomic_write_json(state, self.path)


class RedisDedupStore:
    """``SET {prefix}:alerts:dedup:{key} NX PX ttl``: atomic across processes and hosts."""

    def __init__(self, client: Any, prefix: str = "ml") -> None:
        self.client = client
        self.prefix = prefix

    def _name(self, key: str) -> str:
        return f"{self.prefix}:alerts:dedup:{key}"

    def claim(self, key: str, ttl_s: float) -> bool:
        return bool(self.client.set(self._name(key), str(time.time()), nx=True, px=max(1, int(ttl_s * 1000))))

    def release(self, key: str) -> None:
        self.client.delete(self._name(key))


# --------------------------------------------------------------------------- manager
class AlertManager:
    def __init__(
        self,
        *,
        slack_webhook_url: str | None = None,
        telegram_webhook_url: str | None = None,
        telegram_chat_id: str | None = None,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        dedup_minutes: float = 60.0,
        dedup_store: DedupStore | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.slack_webhook_url = slack_webhook_url or None
        self.telegram_webhook_url = telegram_webhook_url or None
        self.telegram_chat_id = telegram_chat_id or None
        self.timeout_s = timeout_s
        self.retries = max(0, int(retries))
        self.backoff_s = max(0.0, float(backoff_s))
        self.dedup_minutes = max(0.0, float(dedup_minutes))
        self.dedup_store = dedup_store if dedup_store is not None else FileDedupStore()
        self.sleep = sleep
        if self.telegram_webhook_url and not self.telegram_chat_id:
            log.warning("alerts.telegram_webhook_url is set but alerts.telegram_chat_id is not; Telegram is disabled")

    @classmethod
    def from_settings(
        cls, settings: "Settings", *, redis_client: Any = None, state_path: str | Path | None = None, **kwargs: Any
    ) -> "AlertManager":
        """Dedup state in Redis when ``redis_client`` is given (and answers), else a JSON file."""
        a = settings.alerts
        store: DedupStore
        if redis_client is not None and _redis_ok(redis_client):
            store = RedisDedupStore(redis_client, settings.redis.prefix)
        else:
            store = FileDedupStore(state_path or DEFAULT_STATE_PATH)
        return cls(
            slack_webhook_url=a.slack_webhook_url,
            telegram_webhook_url=a.telegram_webhook_url,
            telegram_chat_id=a.telegram_chat_id,
            timeout_s=a.timeout_s,
            retries=a.retries,
            backoff_s=a.backoff_s,
            dedup_minutes=a.dedup_minutes,
            dedup_store=store,
            **kwargs,
        )

    def channels(self) -> dict[str, tuple[str, Callable[[Alert], dict[str, Any]]]]:
        out: dict[str, tuple[str, Callable[[Alert], dict[str, Any]]]] = {}
        if self.slack_webhook_url:
            out["slack"] = (self.slack_webhook_url, slack_payload)
        if self.telegram_webhook_url and self.telegram_chat_id:
            chat = self.telegram_chat_id
            out["telegram"] = (self.telegram_webhook_url, lambda al: telegram_payload(al, chat))
        return out

    def send(self, alert: Alert) -> AlertResult:
        result = AlertResult(key=alert.dedup_key)
        channels = self.channels()
        if not channels:
            log.warning("ALERT (no alert channel configured) %s", alert.plain_text().replace("\n", " | "))
            result.no_channel = True
            return result
        ttl = self.dedup_minutes * 60.0
        if ttl > 0:
            try:
                claimed = self.dedup_store.claim(alert.dedup_key, ttl)
            except Exception as exc:  # noqa: BLE001 - dedup trouble must not silence an alert
                log.warning("alert dedup state unavailable (%s); sending without de-duplication", exc)
                claimed = True
            if not claimed:
                result.deduplicated = True
                log.info("alert %s suppressed: already sent within %g min", alert.dedup_key, self.dedup_minutes)
                return result
        log.warning("ALERT %s", alert.plain_text().replace("\n", " | "))
        for name, (url, build) in channels.items():
            try:
                self._post(url, build(alert))
                result.delivered[name] = True
            except AlertDeliveryError as exc:
                result.delivered[name] = False
                result.errors[name] = str(exc)
                log.error("alert %s not delivered to %s: %s", alert.dedup_key, name, exc)
        if ttl > 0 and not result.sent:
            try:
                self.dedup_store.release(alert.dedup_key)
            except Exception:  # noqa: BLE001
                pass
        return result

    def _post(self, url: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode("utf-8")
        last = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff_s * 2 ** (attempt - 1))
            req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    resp.read()
                return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code != 429 and exc.code < 500:
                    break
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        # A webhook URL's path is its credential (Slack path, Telegram bot token): show the host only.
        raise AlertDeliveryError(f"{redact_url(url, hide_path=True)}: {last} after {attempt + 1} attempt(s)")


def _redis_ok(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001
        return False
