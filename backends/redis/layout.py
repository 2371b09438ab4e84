"""Where a namespace's data lives on the Redis server: the key names, nothing else.

Layout on the server
--------------------
Every key this adapter touches starts with the namespace's *base* ``{<namespace>}``, the
namespace escaped so that ``\\`` and ``}`` inside it are backslash-escaped:

* entries: ``{<namespace>}:<key>``, the key encoded as UTF-8 with ``surrogatepass`` (lone
  surrogates are valid ``str`` keys, and the encoding stays injective);
* a bounded namespace's bookkeeping: ``{<namespace>}#lru``, ``{<namespace>}#ttl``,
  ``{<namespace>}#uses`` (no ``:`` after the ``}``, so no entry can ever be one of them).

Reading the base from the left, the namespace ends at the first unescaped ``}``: no base is a
prefix of another namespace's key, so namespace ``a`` with key ``b:c`` and namespace ``a:b``
with key ``c`` never meet, and ``clear`` can match exactly one namespace with
``SCAN MATCH {<namespace>}*`` (glob characters escaped). The braces are a Redis Cluster hash
tag: a namespace lives in one slot, which the bounded namespace's scripts need.
"""

from __future__ import annotations

from typing import Final

__all__ = ["bookkeeping_keys", "encode", "glob_escape", "namespace_base"]

_GLOB_SPECIAL: Final = frozenset(b"*?[]\\")


def encode(text: str) -> bytes:
    """``text`` as UTF-8, lone surrogates included: every ``str`` key, injectively."""
    # surrogatepass: a lone surrogate is a valid str key; UTF-8 with it stays injective.
    return text.encode("utf-8", "surrogatepass")


def namespace_base(namespace: str) -> bytes:
    """``{namespace}`` with ``\\`` and ``}`` escaped: ends at the first unescaped ``}``."""
    escaped = namespace.replace("\\", "\\\\").replace("}", "\\}")
    return b"{" + encode(escaped) + b"}"


def bookkeeping_keys(base: bytes) -> tuple[bytes, bytes, bytes]:
    """A bounded namespace's recency set, expiry index and use counter, in the order its
    scripts take them as ``KEYS[1..3]`` (see :mod:`.scripts`)."""
    return (base + b"#lru", base + b"#ttl", base + b"#uses")


def glob_escape(raw: bytes) -> bytes:
    """``raw`` as a literal in a Redis glob pattern (``SCAN MATCH``, ``KEYS``)."""
    out = bytearray()
    for byte in raw:
        if byte in _GLOB_SPECIAL:
            out.append(0x5C)  # backslash
        out.append(byte)
    return bytes(out)
