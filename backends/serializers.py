"""Turning values into bytes and back, safely.

The backend layer stores ``bytes``; the cache layer (:mod:`cachespec.backends.cache`)
serializes. The default, :class:`JSONSerializer`, gives back exactly what it was given: what
a miss returns, a hit returns. It stores JSON's own values, ``bytes``, tuples, sets,
frozensets, dicts with any storable keys, ``Decimal``, ``date`` and ``datetime``, each of
exactly its type and falsy values included (:mod:`.tagged`), and cannot execute anything on
load. Pickle is available only by explicit opt-in and only signed:
:class:`SignedPickleSerializer` refuses any payload whose HMAC does not verify, before
unpickling a byte of it.

A value that cannot be stored exactly is an :class:`EncodeError` (a ``TypeError``) from
``dumps``, before anything is written; a payload that cannot be decoded is a
:class:`DecodeError`, which the cache layer counts and treats as a miss (it never reaches
the caller). docs/design.md, "A value's type survives the cache".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from collections.abc import Callable
from typing import Protocol

from . import tagged
from .contract import CacheError


class DecodeError(CacheError):
    """A stored payload did not decode (corrupt, written by another format, or forged)."""


class EncodeError(CacheError, TypeError):
    """A value the serializer cannot store so that it comes back exactly; nothing was
    written. A ``TypeError`` too, as the :class:`Serializer` protocol promises."""


class Serializer(Protocol):
    """``dumps`` raises ``TypeError`` (:class:`EncodeError` here) for a value it cannot
    store; ``loads`` raises :class:`DecodeError` for a payload it cannot read, and never
    runs code from it."""

    def dumps(self, value: object) -> bytes: ...

    def loads(self, data: bytes) -> object: ...


# One tag byte says what follows, so that bytes values need no escaping inside JSON: plain
# JSON, a tagged tree (tagged.py), or top-level bytes as they are.
_JSON, _TAGGED, _BYTES = b"j", b"t", b"b"
# The decoder's scanner (set in JSONDecoder.__init__, not in typeshed): the document
# itself, with no whitespace handling around it.
_scan_once: Callable[[str, int], tuple[object, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode


def _refusal(value: object, reason: str) -> EncodeError:
    return EncodeError(
        f"cannot store this {type(value).__name__} exactly ({reason}); JSONSerializer stores "
        f"{tagged.STORABLE}: convert the value, or opt in to SignedPickleSerializer"
    )


class JSONSerializer:
    """Exact round trips: JSON where it suffices, tagged JSON where it does not.

    A value made only of JSON's scalars, lists and str-keyed dicts is written as plain JSON
    (and read on a hit by the scanner alone); any other storable value as a tagged tree
    (:mod:`.tagged`). Anything else is refused at ``dumps`` with :class:`EncodeError`,
    naming what and where: another type, a subclass (it would come back as its base class),
    a datetime with a named or non-fixed timezone, an int too long for ``int``'s text
    conversion (``loads`` could not read it back), a value nested too deep or containing
    itself.
    """

    def dumps(self, value: object) -> bytes:
        if value.__class__ is bytes:
            return _BYTES + value
        try:
            if tagged.is_plain(value):
                tag, tree = _JSON, value
            else:
                tag, tree = _TAGGED, tagged.encode(value)
            text = _encode_json(tree)
        except TypeError:
            try:
                where = tagged.locate(value)
            except RecursionError:  # its own walk is a little deeper than encode's
                where = None
            reason = f"at {where[0]}, {where[1]}" if where else "no exact encoding"
            raise _refusal(value, reason) from None
        except ValueError as exc:  # an int longer than sys.get_int_max_str_digits() digits
            raise _refusal(value, str(exc)) from None
        except RecursionError:
            raise _refusal(value, "nested too deep, or it contains itself") from None
        return tag + text.encode("utf-8", "surrogatepass")

    def loads(self, data: bytes) -> object:
        tag, body = data[:1], data[1:]
        if tag == _JSON:
            # The hit path of a plain value, as it was before tags: dumps writes one compact
            # document, so the scanner alone reads it whole (a third faster than json.loads).
            try:
                text = body.decode("utf-8", "surrogatepass")
                value, end = _scan_once(text, 0)
                if end == len(text):
                    return value
            except (StopIteration, ValueError, RecursionError):
                pass
        elif tag == _BYTES:
            return body
        return self._read(tag, body)

    def _read(self, tag: bytes, body: bytes) -> object:
        """Any other payload: tagged, another writer's JSON (whitespace around it), or bad,
        which the full decoder reads or explains."""
        if tag not in (_JSON, _TAGGED):
            raise DecodeError(f"unknown payload tag {tag!r}")
        try:
            tree = json.loads(body.decode("utf-8", "surrogatepass"))
        except (ValueError, RecursionError) as exc:  # a UnicodeDecodeError is a ValueError
            raise DecodeError(f"not a JSON payload: {exc}") from None
        if tag == _JSON:
            return tree
        try:
            return tagged.decode(tree)
        except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
            raise DecodeError(f"not a tagged JSON payload: {exc}") from None


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
