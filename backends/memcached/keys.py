"""Key mapping: which memcached key stands for a namespace's key.

memcached keys are at most 250 bytes of printable ASCII without space; cachespec keys are any
``str``. A data key is ``<namespace>:<generation>:<body>`` (``<namespace>:-:<body>`` in a
namespace without ``clear``). The body is the key itself when it is *plain* (printable ASCII,
no space, within a length budget, not starting with ``#``), else ``#`` plus the hex SHA-256 of
the key's UTF-8 bytes (lone surrogates encoded with ``surrogatepass``). Never truncated, never
shared by two keys (see :func:`key_body`).
"""

from __future__ import annotations

import hashlib
import re

from ..contract import CacheError

__all__ = [
    "DIGEST_MARKER",
    "GENERATION_DIGITS",
    "MAX_KEY_BYTES",
    "NAMESPACE_PATTERN",
    "SERVER_KEY_RE",
    "key_body",
    "plain_key_budget",
    "server_key",
]

MAX_KEY_BYTES = 250
"""memcached's key limit in bytes; pymemcache refuses a 251-byte key (docs/facts.md)."""

DIGEST_MARKER = "#"
"""The first character of every digest body; a plain body never starts with it."""

NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
"""Namespaces are short and contain no ``:``, so ``<namespace>:`` is a prefix-free tag."""

GENERATION_DIGITS = 20
"""The longest generation in a data key: a memcached counter is a 64-bit unsigned integer."""

SERVER_KEY_RE = re.compile(r"[!-~]{1,250}")
"""A memcached key as it may go on a hand-built command line: printable ASCII, no space, at
most 250 bytes. Every key this adapter builds is one."""


def key_body(key: str, budget: int) -> str:
    """The part of a memcached key that stands for ``key``: the key itself, or its digest.

    Plain when ``key`` is printable ASCII without space (so no whitespace or control
    characters, which memcached forbids), has at most ``budget`` characters (bytes, being
    ASCII) and does not start with :data:`DIGEST_MARKER`; otherwise ``"#"`` plus the 64 hex
    digits of SHA-256 over ``key.encode("utf-8", "surrogatepass")``.

    Injective. Two plain bodies are equal only for equal keys (a plain body is the key). A
    plain body never starts with ``#`` and a digest always does, so no plain body equals a
    digest, however the key was crafted. Two digests are equal only if SHA-256 collides on two
    different byte strings (collision resistance), because UTF-8 with ``surrogatepass`` gives
    every code point, lone surrogates included, its own self-delimiting byte sequence, so
    different strings encode to different bytes. Nothing is truncated: a key over the budget
    is hashed whole. The empty key is plain (body ``""``); its memcached key is the prefix.
    """
    if (
        len(key) <= budget
        and key.isascii()
        and key.isprintable()
        and " " not in key
        and not key.startswith(DIGEST_MARKER)
    ):
        return key
    return DIGEST_MARKER + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def plain_key_budget(namespace: str, generation_digits: int) -> int:
    """The longest body kept plain under ``<namespace>:<generation>:``, the generation being
    at most ``generation_digits`` characters: the whole key then fits in 250 bytes."""
    return MAX_KEY_BYTES - len(namespace) - generation_digits - 2


def server_key(prefix: str, body: str) -> bytes:
    """The memcached key of ``body`` under ``prefix``, checked before it goes on a hand-built
    command line (``key_body`` only makes such keys; this makes sure)."""
    name = prefix + body
    if not SERVER_KEY_RE.fullmatch(name):
        raise CacheError(f"refusing to send the key {name!r} on a command line")
    return name.encode("ascii")
