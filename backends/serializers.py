"""Turning values into bytes and back, safely.

The backend layer stores ``bytes``; the cache layer (:mod:`cachespec.backends.cache`)
serializes. The default, :class:`JSONSerializer`, round-trips JSON-like values (``None``,
``bool``, ``int``, ``float``, ``str``, lists and str-keyed dicts of them) and top-level
``bytes``, falsy values included, and cannot execute anything on load. Pickle is available
only by explicit opt-in and only signed: :class:`SignedPickleSerializer` refuses any payload
whose HMAC does not verify, before unpickling a byte of it.

A value that cannot be serialized is a ``TypeError`` before anything is written; a payload
that cannot be decoded is a :class:`DecodeError`, which the cache layer counts and treats as
a miss (it never reaches the caller).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from collections.abc import Callable
from typing import Protocol

from .contract import CacheError


class DecodeError(CacheError):
    """A stored payload did not decode (corrupt, written by another format, or forged)."""


class Serializer(Protocol):
    """``dumps`` raises ``TypeError`` for a value it cannot store; ``loads`` raises
    :class:`DecodeError` for a payload it cannot read, and never runs code from it."""

    def dumps(self, value: object) -> bytes: ...

    def loads(self, data: bytes) -> object: ...


# One tag byte says what follows, so that bytes values need no escaping inside JSON.
_JSON, _BYTES = b"j", b"b"
# The decoder's scanner (set in JSONDecoder.__init__, not in typeshed): the document
# itself, with no whitespace handling around it.
_scan_once: Callable[[str, int], tuple[object, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


class JSONSerializer:
    """JSON-like values and top-level ``bytes``; tuples come back as lists."""

    def dumps(self, value: object) -> bytes:
        if isinstance(value, bytes):
            return _BYTES + value
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"cannot serialize {type(value).__name__} as JSON ({exc}); store JSON-like "
                "values or bytes, or opt in to SignedPickleSerializer"
            ) from None
        return _JSON + text.encode("utf-8", "surrogatepass")

    def loads(self, data: bytes) -> object:
        tag, body = data[:1], data[1:]
        if tag == _BYTES:
            return body
        if tag == _JSON:
            try:
                text = body.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError as exc:
                raise DecodeError(f"not a JSON payload: {exc}") from None
            try:
                # dumps writes one compact document, so the scanner alone reads it whole
                # (a third faster than json.loads on a hit); anything else takes the full
                # decoder, which also produces the error message.
                value, end = _scan_once(text, 0)
                if end == len(text):
                    return value
            except (StopIteration, ValueError, RecursionError):
                pass
            try:
                return json.loads(text)
            except (ValueError, RecursionError) as exc:  # nesting too deep is a bad payload too
                raise DecodeError(f"not a JSON payload: {exc}") from None
        raise DecodeError(f"unknown payload tag {tag!r}")


class SignedPickleSerializer:
    """Any picklable value, each payload signed with HMAC-SHA256 under ``secret``.

    Only code holding ``secret`` can produce a payload this serializer unpickles: a payload
    written by anyone else (or corrupted) fails verification and is never unpickled. Use a
    secret of at least 32 random bytes, the same in every process sharing the cache.
    """

    def __init__(self, secret: bytes, *, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise ValueError("SignedPickleSerializer needs a secret of at least 16 bytes")
        self._secret = secret
        self._protocol = protocol

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()

    def dumps(self, value: object) -> bytes:
        try:
            body = pickle.dumps(value, protocol=self._protocol)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TypeError(f"cannot pickle {type(value).__name__}: {exc}") from None
        return self._sign(body) + body

    def loads(self, data: bytes) -> object:
        signature, body = data[:32], data[32:]
        if len(signature) < 32 or not hmac.compare_digest(signature, self._sign(body)):
            raise DecodeError("the payload's signature does not verify; it was not unpickled")
        try:
            return pickle.loads(body)
        except Exception as exc:
            raise DecodeError(f"a signed payload did not unpickle: {exc}") from None
