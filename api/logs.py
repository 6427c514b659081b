"""Structured JSON logs, one object a line, with secrets redacted on the way out.

Redaction is the formatter's last step, over the whole rendered line, so a secret that slips
into a message, an `extra` field or a traceback is still masked: API keys (`sk_`/`rk_`/`pk_`),
the platform admin key, bearer tokens, client secrets and 32-byte hex private keys.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from typing import Any

LOGGER_NAME = "settle.api"
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
REDACTED = "[REDACTED]"

_SECRET_PATTERNS = [
    # API keys: keep the type and mode so a log still says which kind of key was involved.
    (re.compile(r"\b((?:sk|rk|pk)_(?:test|live)_)[A-Za-z0-9_]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+"), r"\1" + REDACTED),
    (re.compile(r"(_secret_)[A-Za-z0-9]+"), r"\1" + REDACTED),
    (re.compile(r"\b0x[0-9a-fA-F]{64}\b"), REDACTED),
    (re.compile(r"(?i)(\"?(?:authorization|api_key|secret|password|private_key)\"?\s*[:=]\s*\"?)[^\s\",}]+"), r"\1" + REDACTED),
]

# Attributes every LogRecord has; anything else came in through `extra=` and is logged as a field.
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


def redact(text: str, *, extra_secrets: tuple[str, ...] = ()) -> str:
    for secret in extra_secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def __init__(self, *, extra_secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.extra_secrets = extra_secrets

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _RESERVED and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False), extra_secrets=self.extra_secrets)


class RedactingFilter(logging.Filter):
    """For handlers we do not format (pytest's, uvicorn's): masks secrets in the message."""

    def __init__(self, *, extra_secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.extra_secrets = extra_secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message, extra_secrets=self.extra_secrets)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def configure_logging(*, level: str, json_lines: bool, extra_secrets: tuple[str, ...] = ()) -> logging.Logger:
    """Give `settle.api` one stderr handler (once, however often this is called)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level.upper())
    if not any(getattr(filter_, "_settle", False) for filter_ in logger.filters):
        redacting = RedactingFilter(extra_secrets=extra_secrets)
        redacting._settle = True  # type: ignore[attr-defined]
        logger.addFilter(redacting)
    if json_lines and not any(getattr(handler, "_settle", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter(extra_secrets=extra_secrets))
        handler._settle = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        # Our handler writes the line; the root's (if any) would write it again, unformatted.
        logger.propagate = False
        # The server's own lines (startup, shutdown, protocol errors) in the same format.
        for name in SERVER_LOGGERS:
            for server_handler in logging.getLogger(name).handlers:
                server_handler.setFormatter(JsonFormatter(extra_secrets=extra_secrets))
    return logger
