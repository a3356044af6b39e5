"""A log filter that blanks anything looking like a secret, as a last line of defence."""

from __future__ import annotations

import logging
import re

_PATTERNS = [
    re.compile(r"(?i)(secret|session_key|api_?key|apiv3_key|private_key|access_token|password|token)"
               r"(['\"]?\s*[:=]\s*['\"]?)([^\s'\",&]+)"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
]


def redact(text: str) -> str:
    text = _PATTERNS[0].sub(lambda m: m.group(1) + m.group(2) + "[redacted]", text)
    return _PATTERNS[1].sub("[redacted private key]", text)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the log line
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
