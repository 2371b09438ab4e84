"""A backend that passes every call through one method, for wrappers that watch, break or
restrict some of them (the staleness machine's fault injection, a user server's tenant)."""

from __future__ import annotations

from typing import Any

from cachespec.backends import Backend


class Wrapped(Backend):
    """A backend that passes every call to ``inner`` through :meth:`_call`, for wrappers
    that watch or break some of them."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner
        self.guarantees = inner.guarantees

    def _call(self, name: str, *args: Any) -> Any:
        return getattr(self._inner, name)(*args)

    def get(self, key: str) -> Any:
        return self._call("get", key)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._call("set", key, value, ttl)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        return bool(self._call("add", key, value, ttl))

    def delete(self, key: str) -> None:
        self._call("delete", key)

    def get_many(self, keys: Any) -> dict[str, bytes]:
        return dict(self._call("get_many", keys))

    def set_many(self, items: Any, ttl: float | None = None) -> None:
        self._call("set_many", items, ttl)

    def delete_many(self, keys: Any) -> None:
        self._call("delete_many", keys)

    def clear(self) -> None:
        self._call("clear")

    def compare_and_set(
        self, key: str, expected: bytes, value: bytes, ttl: float | None = None
    ) -> bool:
        return bool(self._call("compare_and_set", key, expected, value, ttl))

    def compare_and_delete(self, key: str, expected: bytes) -> bool:
        return bool(self._call("compare_and_delete", key, expected))

    def close(self) -> None:
        self._inner.close()

    def discard(self) -> None:
        self._call("discard")
