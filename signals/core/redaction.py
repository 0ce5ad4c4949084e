"""The one place that hides credentials before configuration is logged, printed or stored.

Everything that leaves the process (MLflow params, tags and config artifacts, log records, CLI
output, error messages, the Redis mirror) goes through these functions, so a rule added here
covers every exit at once. The rules:

* ``scheme://user:password@host``: the password becomes ``***``; the user name stays, except for
  http(s), where a user part is often a token (``https://TOKEN:x-oauth-basic@host``), so the
  whole userinfo goes.
* ``scheme://NAME@host`` (userinfo without a colon): for redis and web URLs that single part *is*
  the credential, so it becomes ``***``; for SQL database schemes (``postgresql``, ``mysql``, ...)
  it is a role name with no secret in it, and it stays (``postgresql://user@db:5432/x``).
* query and fragment parameters named like a credential (``password``, ``pwd``, ``token``,
  ``api_key``, ``key``, ``sig``, ``X-Amz-Signature``, anything containing ``secret``/``token``/...)
  keep their name, lose their value; ``name=value`` pairs outside URLs are treated the same way.
* webhook URLs whose path is the credential: Slack (``hooks.slack.com/services/***``), Discord
  (``/api/webhooks/***``) and Telegram bot tokens (``api.telegram.org/bot***/sendMessage``).
* keys whose name says secret (``password``, ``token``, ``api_key``, ...) lose their whole value;
  keys naming a webhook keep only the URL's scheme and host.

Redaction is deliberately generous: a URL that merely looks like it carries a credential loses that
part, because an over-redacted log line costs nothing and a leaked token costs a rotation.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Mapping

MASK = "***"

# Parameter / key names that hold a credential, exactly (short, ambiguous words) ...
_SECRET_NAMES = frozenset({"pass", "pwd", "key", "sig", "auth"})
# ... or anywhere in the name (long, unambiguous words).
_SECRET_WORDS = re.compile(
    r"password|passwd|passphrase|secret|token|signature|credential|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|authorization",
    re.IGNORECASE,
)
_WEBHOOK_WORD = re.compile(r"webhook", re.IGNORECASE)

# A user name alone is a role, not a secret, for these SQL schemes (with or without "+driver").
_DATABASE_SCHEMES = frozenset(
    {"postgresql", "postgres", "mysql", "mariadb", "mssql", "oracle", "cockroachdb", "sqlite", "db2", "snowflake"}
)
_WEB_SCHEMES = frozenset({"http", "https"})

# A URL inside free text: stops at white space and the quotes / brackets text puts around it.
_URL_IN_TEXT = re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_URL_SEPARATOR = re.compile(r"([,;])(?=[A-Za-z][A-Za-z0-9+.\-]*://)")
_URL_PARTS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>.*)", re.DOTALL)
# name=value outside a URL (libpq DSNs, log lines, exception texts); dotted names judged by their leaf.
_PAIR_IN_TEXT = re.compile(r"(?<![\w.\-])(?P<name>[A-Za-z][\w.\-]*)(?P<eq>\s*=\s*)(?P<value>[^\s&;,'\"]+)")

# Hosts whose URL path is itself the credential: (host pattern, path pattern, replacement).
_PATH_SECRETS: tuple[tuple[re.Pattern[str], re.Pattern[str], str], ...] = (
    (re.compile(r"(^|\.)hooks\.slack\.com$"), re.compile(r"^(/[^/]+/).+$", re.DOTALL), r"\g<1>" + MASK),
    (re.compile(r"(^|\.)(discord|discordapp)\.com$"), re.compile(r"^(/api(?:/v\d+)?/webhooks/).+$", re.DOTALL),
     r"\g<1>" + MASK),
    (re.compile(r"^api\.telegram\.org$"), re.compile(r"^(/(?:file/)?bot)[^/]+"), r"\g<1>" + MASK),
)


# --------------------------------------------------------------------------- names
def _last_segment(key: str) -> str:
    """``alerts.slack_webhook_url`` / ``SA_ALERTS__SLACK_WEBHOOK_URL`` -> the leaf name."""
    return re.split(r"\.|__", str(key))[-1]


def is_secret_name(name: str) -> bool:
    """True when a key or parameter name says its value is a credential."""
    leaf = _last_segment(name).lower()
    return leaf in _SECRET_NAMES or bool(_SECRET_WORDS.search(leaf))


def _is_webhook_name(name: str) -> bool:
    return bool(_WEBHOOK_WORD.search(_last_segment(name)))


# --------------------------------------------------------------------------- URLs
def _redact_pairs(text: str, separator: str) -> str:
    """``a=1&password=x`` -> ``a=1&password=***`` (query strings and fragments)."""
    out = []
    for pair in text.split(separator):
        name, eq, value = pair.partition("=")
        out.append(f"{name}={MASK}" if eq and value and is_secret_name(name) else pair)
    return separator.join(out)


def _split_authority(rest: str) -> tuple[str, str]:
    """(authority, path+query+fragment) of what follows ``scheme://``.

    A password typed without percent-encoding may hold ``/``, ``?`` or ``#``; when the part
    before that character reads ``user:something-not-a-port`` and an ``@`` follows, the
    authority runs to that ``@`` so the rest of the password is not mistaken for a path.
    """
    m = re.match(r"[^/?#]*", rest)
    end = m.end() if m else 0
    authority = rest[:end]
    if "@" not in authority and not authority.startswith("["):
        _, colon, after = authority.partition(":")
        at = rest.find("@", end)
        if colon and at != -1 and not after.isdigit():
            host_end = re.match(r"[^/?#]*", rest[at + 1 :])
            end = at + 1 + (host_end.end() if host_end else 0)
            authority = rest[:end]
    return authority, rest[end:]


def _redact_userinfo(scheme: str, userinfo: str) -> str:
    base = scheme.lower().split("+", 1)[0]
    user, colon, _ = userinfo.partition(":")
    if base in _WEB_SCHEMES:
        return MASK
    if colon:
        return f"{user}:{MASK}"
    return userinfo if base in _DATABASE_SCHEMES else MASK


def _redact_tail(host: str, tail: str, hide_path: bool) -> str:
    """Path, query and fragment of a URL with their credentials masked."""
    before_hash, hashmark, fragment = tail.partition("#")
    path, qmark, query = before_hash.partition("?")
    if hide_path:
        return f"/{MASK}" if (path.strip("/") or query or fragment) else path
    for host_re, path_re, repl in _PATH_SECRETS:
        if host_re.search(host.lower()):
            path = path_re.sub(repl, path, count=1)
    out = path + (("?" + _redact_pairs(query, "&")) if qmark else "")
    if hashmark:
        out += "#" + (_redact_pairs(fragment, "&") if "=" in fragment else fragment)
    return out


def redact_url(url: str, *, hide_path: bool = False) -> str:
    """``url`` with every credential replaced by ``***`` (see the module docstring for the rules).

    ``hide_path`` also masks the whole path, query and fragment: for webhook URLs of any host,
    where the path is the capability. Text that is not a ``scheme://`` URL is returned unchanged;
    several URLs joined by ``,`` or ``;`` are redacted one by one.
    """
    return "".join(
        part if part in (",", ";") else _redact_one_url(part, hide_path) for part in _URL_SEPARATOR.split(url)
    )


def _redact_one_url(url: str, hide_path: bool) -> str:
    m = _URL_PARTS.match(url)
    if m is None:
        return url
    scheme, rest = m["scheme"], m["rest"]
    authority, tail = _split_authority(rest)
    userinfo, at, hostport = authority.rpartition("@")
    if at:
        authority = f"{_redact_userinfo(scheme, userinfo)}@{hostport}"
    host = hostport.rsplit(":", 1)[0] if not hostport.startswith("[") else hostport
    return f"{scheme}://{authority}{_redact_tail(host, tail, hide_path)}"


# --------------------------------------------------------------------------- text and values
def redact_text(text: str) -> str:
    """Free text (a log line, an exception message) with the credentials of every URL and
    every ``secret-name=value`` pair outside URLs masked."""
    if not text:
        return text
    out, pos = [], 0
    for m in _URL_IN_TEXT.finditer(text):
        out += [_redact_pairs_in_text(text[pos : m.start()]), redact_url(m.group(0))]
        pos = m.end()
    out.append(_redact_pairs_in_text(text[pos:]))
    return "".join(out)


def _redact_pairs_in_text(text: str) -> str:
    return _PAIR_IN_TEXT.sub(
        lambda m: f"{m['name']}{m['eq']}{MASK}" if is_secret_name(m["name"]) else m.group(0), text
    )


def _redact_webhook(value: str) -> str:
    if _URL_PARTS.match(value):
        return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0), hide_path=True), value)
    return MASK


def redact_value(key: str, value: Any) -> Any:
    """``value`` as it may be shown under ``key``: by the key's name first, then by content.

    Mappings and sequences are walked (nested keys joined with ``.``); numbers, booleans and
    ``None`` under ordinary keys pass through unchanged.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        return {k: redact_value(f"{key}.{k}" if key else str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(key, v) for v in value)
    if key and is_secret_name(key):
        return MASK if value != "" else value
    if not isinstance(value, str):
        return value
    if key and _is_webhook_name(key):
        return _redact_webhook(value) if value else value
    return redact_text(value)


def redact_mapping(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Every value of a flat ``key -> value`` mapping (params, tags) through :func:`redact_value`."""
    return {k: redact_value(k, v) for k, v in mapping.items()}


# --------------------------------------------------------------------------- logging
def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask credentials in a log record's final message and traceback text (in place)."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format string is logging's to report, at emit time
        return record
    cleaned = redact_text(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact_text(record.exc_text)
    return record


def install_log_redaction() -> None:
    """From now on, mask credentials in every log record this process creates.

    Done where records are made (the record factory) rather than on handlers: MLflow and Optuna
    log through their own handlers that do not propagate to the root logger. Idempotent.
    """
    current = logging.getLogRecordFactory()
    if getattr(current, "redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(current(*args, **kwargs))

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
