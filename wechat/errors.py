"""Exceptions raised at the WeChat boundary.

Callers branch on the class: ``WeChatUnavailable`` is transient (retry later, outcome unknown),
``WeChatAPIError``/``WeChatPayError`` are WeChat's considered answer, ``NotifyRejected`` carries the
HTTP status the notify view should answer with.
"""

from __future__ import annotations


class WeChatError(Exception):
    """Base class, so a caller can catch everything from this package at once."""


class WeChatAPIError(WeChatError):
    """A mini-program API answered with ``errcode != 0``."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeChat API error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class WeChatUnavailable(WeChatError):
    """Network failure, timeout, 5xx, an unreadable or unverifiable answer: the outcome is unknown."""


class WeChatPayError(WeChatError):
    """WeChat Pay answered a request with a 4xx and its ``{"code", "message"}`` body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"WeChat Pay error {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class PayV2DataError(WeChatError, ValueError):
    """An API v2 payload (XML or encrypted ``req_info``) could not be read safely."""


class NotifyRejected(WeChatError):
    """A notification that must not be acted on; ``http_status`` is what to answer WeChat."""

    default_status = 400

    def __init__(self, reason_code: str, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message
        self.http_status = http_status if http_status is not None else self.default_status


class NotifySignatureError(NotifyRejected):
    """Missing/bad signature, unknown serial, stale timestamp or a deliberate signature probe."""

    default_status = 401


class NotifyDecryptError(NotifyRejected):
    """Authentic envelope whose resource cannot be decrypted or is not what we expect."""

    default_status = 400
