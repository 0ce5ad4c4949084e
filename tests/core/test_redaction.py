"""Redaction: every credential form, in URLs, free text, keyed values and log records."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from signals.core.redaction import (
    MASK,
    is_secret_name,
    redact_mapping,
    redact_record,
    redact_text,
    redact_url,
    redact_value,
)
from tests.conftest import REPO_ROOT

# input -> expected, through redact_text (which is what logs, errors and params go through)
FORMS = [
    # user:password
    ("redis://:s3cr3t@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("rediss://default:s3cr3t@cache.example:6380/1", "rediss://default:***@cache.example:6380/1"),
    ("postgresql://app:s3cr3t@db:5432/mlflow", "postgresql://app:***@db:5432/mlflow"),
    ("postgresql+psycopg://app:s3cr3t@db/x", "postgresql+psycopg://app:***@db/x"),
    ("mysql://root:@db/x", "mysql://root:***@db/x"),
    ("amqp://guest:s3cr3t@mq:5672/vhost", "amqp://guest:***@mq:5672/vhost"),
    # a raw (not percent-encoded) password holding '/' still loses all of it
    ("postgresql://app:s3/cr3t@db/x", "postgresql://app:***@db/x"),
    # http(s): the whole userinfo goes (the user part is often the token)
    ("https://ghp_TOKEN:x-oauth-basic@github.com/o/r.git", "https://***@github.com/o/r.git"),
    ("http://user:s3cr3t@mlflow.example:5000", "http://***@mlflow.example:5000"),
    # token-only userinfo
    ("redis://s3cr3ttoken@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"),
    ("rediss://s3cr3ttoken@cache.example", "rediss://***@cache.example"),
    ("https://s3cr3ttoken@mlflow.example/api", "https://***@mlflow.example/api"),
    # ... but a SQL role name alone is no secret
    ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://postgres@127.0.0.1:5432/test"),
    ("mysql+pymysql://reader@db/x", "mysql+pymysql://reader@db/x"),
    # query and fragment credentials
    ("redis://127.0.0.1:6379/9?password=s3cr3t", "redis://127.0.0.1:6379/9?password=***"),
    ("unix:///tmp/redis.sock?db=0&password=s3cr3t", "unix:///tmp/redis.sock?db=0&password=***"),
    ("redis://:s3cr3t@h:1/0?password=s3cr3t", "redis://:***@h:1/0?password=***"),
    ("postgresql://db/x?user=app&pass=s3cr3t&pwd=s3cr3t", "postgresql://db/x?user=app&pass=***&pwd=***"),
    ("https://api.example/v1?token=s3cr3t&limit=5", "https://api.example/v1?token=***&limit=5"),
    ("https://api.example/v1?access_token=s3cr3t", "https://api.example/v1?access_token=***"),
    ("https://api.example/v1?api_key=s3cr3t&apikey=s3cr3t", "https://api.example/v1?api_key=***&apikey=***"),
    ("https://maps.example/v1?key=s3cr3t&q=x", "https://maps.example/v1?key=***&q=x"),
    ("https://api.example/v1?client_secret=s3cr3t", "https://api.example/v1?client_secret=***"),
    ("https://acct.blob.core.windows.net/c?sv=2022&sig=s3cr3t", "https://acct.blob.core.windows.net/c?sv=2022&sig=***"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA&X-Amz-Signature=s3cr3t",
     "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***"),
    ("https://api.example/cb?signature=s3cr3t", "https://api.example/cb?signature=***"),
    ("https://app.example/#access_token=s3cr3t&state=1", "https://app.example/#access_token=***&state=1"),
    # webhook and bot tokens in the path
    ("https://hooks.slack.com/services/T0001/B0002/s3cr3t", "https://hooks.slack.com/services/***"),
    ("https://hooks.slack.com/workflows/T0001/A0002/1/s3cr3t", "https://hooks.slack.com/workflows/***"),
    ("https://api.telegram.org/bot123456:s3cr3t/sendMessage", "https://api.telegram.org/bot***/sendMessage"),
    ("https://api.telegram.org/file/bot123456:s3cr3t/doc.pdf", "https://api.telegram.org/file/bot***/doc.pdf"),
    ("https://discord.com/api/webhooks/1234/s3cr3t", "https://discord.com/api/webhooks/***"),
    # nothing to hide: unchanged
    ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
    ("sqlite:////tmp/x/optuna.db", "sqlite:////tmp/x/optuna.db"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("redis://[::1]:6379/0", "redis://[::1]:6379/0"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("https://registry.npmjs.org/@scope/pkg", "https://registry.npmjs.org/@scope/pkg"),
    ("models:/signals-xgb@champion", "models:/signals-xgb@champion"),
    ("file:///tmp/mlruns/1/abc/artifacts", "file:///tmp/mlruns/1/abc/artifacts"),
    ("https://api.example/v1?monkey=1&keys=2", "https://api.example/v1?monkey=1&keys=2"),
    # inside free text: every URL, and name=value pairs outside URLs
    ("cannot reach redis://:s3cr3t@h:6379/0: refused", "cannot reach redis://:***@h:6379/0: refused"),
    ("tried 'redis://s3cr3t@a' and \"https://x/?token=s3cr3t\"", "tried 'redis://***@a' and \"https://x/?token=***\""),
    ("redis://a:s3cr3t@h1,redis://b:s3cr3t@h2", "redis://a:***@h1,redis://b:***@h2"),
    ("host=db user=app password=s3cr3t dbname=x", "host=db user=app password=*** dbname=x"),
    ("token = s3cr3t; next", "token = ***; next"),
    ("api_key=s3cr3t&x=1", "api_key=***&x=1"),
    ("sorted by key=date", "sorted by key=***"),  # generous on purpose
    ("cfg.redis.password=s3cr3t cfg.seed=42", "cfg.redis.password=*** cfg.seed=42"),
    ("up_threshold=0.01 seed=42", "up_threshold=0.01 seed=42"),
]


@pytest.mark.parametrize(("raw", "expected"), FORMS, ids=[f[0][:60] for f in FORMS])
def test_every_credential_form(raw: str, expected: str) -> None:
    assert redact_text(raw) == expected
    assert redact_text(expected) == expected  # idempotent: redacting twice changes nothing


@pytest.mark.parametrize(("raw", "expected"), [(r, e) for r, e in FORMS if re.fullmatch(r"[a-z][\w+.\-]*://\S+", r)])
def test_redact_url_agrees_with_redact_text(raw: str, expected: str) -> None:
    assert redact_url(raw) == expected


def test_hide_path_keeps_only_scheme_and_host() -> None:
    assert redact_url("https://hooks.example/abc/s3cr3t?x=1", hide_path=True) == "https://hooks.example/***"
    assert redact_url("https://u:pw@hooks.example/p", hide_path=True) == "https://***@hooks.example/***"
    assert redact_url("https://hooks.example/", hide_path=True) == "https://hooks.example/"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("redis.url", "redis://:s3cr3t@h/0", "redis://:***@h/0"),
        ("alerts.slack_webhook_url", "https://hooks.slack.com/services/T/B/s3cr3t", "https://hooks.slack.com/***"),
        ("alerts.telegram_webhook_url", "https://api.telegram.org/bot1:s3cr3t/sendMessage", "https://api.telegram.org/***"),
        ("alerts.slack_webhook_url", "not-a-url-s3cr3t", MASK),
        ("alerts.slack_webhook_url", None, None),
        ("db.password", "s3cr3t", MASK),
        ("SA_PASSWORD", "s3cr3t", MASK),
        ("SA_ALERTS__API_TOKEN", "s3cr3t", MASK),
        ("service.client_secret", "s3cr3t", MASK),
        ("x.api_key", 12345, MASK),
        ("x.private_key", "-----BEGIN", MASK),
        ("x.token", "", ""),
        ("alerts.telegram_chat_id", "-100123", "-100123"),
        ("ml.up_threshold", 0.01, 0.01),
        ("redis.enabled", True, True),
        ("data.symbols", ["AAPL", "redis://t0k@h"], ["AAPL", "redis://***@h"]),
        ("", {"redis": {"url": "redis://t0k@h", "password": "s3cr3t"}}, {"redis": {"url": "redis://***@h", "password": MASK}}),
    ],
)
def test_values_by_key_then_by_content(key: str, value, expected) -> None:
    assert redact_value(key, value) == expected


@pytest.mark.parametrize("name", ["password", "PASSWORD", "db_passwd", "pwd", "pass", "token", "access_token", "api_key",
                                  "apikey", "api-key", "key", "secret", "client_secret", "sig", "signature",
                                  "X-Amz-Signature", "X-Amz-Credential", "auth", "SA_REDIS__PASSWORD"])
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["url", "tracking_uri", "monkey", "keys", "passenger", "seed", "chat_id", "prefix",
                                  "cache_dir", "signals.step", "n_estimators"])
def test_ordinary_names(name: str) -> None:
    assert not is_secret_name(name)


def test_redact_mapping_for_params_and_tags() -> None:
    out = redact_mapping({"cfg.redis.url": "redis://t0k@h", "cfg.seed": 42, "source.token": "s3cr3t"})
    assert out == {"cfg.redis.url": "redis://***@h", "cfg.seed": 42, "source.token": MASK}


def test_log_records_lose_credentials_in_message_args_and_traceback() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "connecting to %s with %s", ("redis://t0k@h", "pwd=s3"), None)
    try:
        raise RuntimeError("auth failed for redis://:s3cr3t@h/0")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    text = logging.Formatter().format(redact_record(record))
    assert "t0k" not in text and "s3cr3t" not in text and "pwd=s3" not in text
    assert "redis://***@h" in text and "redis://:***@h/0" in text


def test_installed_redaction_covers_non_propagating_loggers() -> None:
    """MLflow and Optuna log through their own handlers; the record factory still sees them."""
    import io

    from signals.core.redaction import install_log_redaction

    previous = logging.getLogRecordFactory()
    logger = logging.getLogger("test-redaction.own-handler")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logging.setLogRecordFactory(logging.LogRecord)  # as in a fresh process (an earlier test may have installed it)
        install_log_redaction()
        installed = logging.getLogRecordFactory()
        install_log_redaction()  # idempotent: one wrapper, not two
        assert installed is not logging.LogRecord and logging.getLogRecordFactory() is installed
        logger.warning("store at %s", "postgresql://u:s3cr3t@db/x")
        logger.warning("bad format %s %s", "only one")  # a broken call is still logging's to report
        assert stream.getvalue().splitlines()[0] == "store at postgresql://u:***@db/x"
    finally:
        logging.setLogRecordFactory(previous)
        logger.removeHandler(handler)


def test_one_home_for_redaction() -> None:
    """No module masks credentials on its own: the mask literal and URL-password regexes live in
    signals/core/redaction.py only, and the old helpers are the shared function."""
    import signals.adapters.redis
    import signals.adapters.tracking
    import signals.core.redaction as R

    assert signals.adapters.redis.redact_url is R.redact_url
    assert signals.adapters.tracking.redact is R.redact_value
    offenders = []
    for root in ("signals", "entrypoints"):
        for path in (REPO_ROOT / root).rglob("*.py"):
            if path == Path(R.__file__):
                continue
            text = path.read_text()
            if '"***"' in text or "'***'" in text or "urlunsplit" in text or "def _redact" in text:
                offenders.append(str(path.relative_to(REPO_ROOT)))
    assert offenders == []
