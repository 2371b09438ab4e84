"""The memcached adapter against a real, throwaway memcached: what the suite does not see.

The session fixture starts ``memcached -l 127.0.0.1 -p PORT -U 0 -m 64`` on a free port and stops
it at the end. It is deliberately small so that the harness in ``conformance/servers/`` can
replace it. A missing ``memcached`` binary fails these tests (CI has it), unless
``CACHESPEC_ALLOW_NO_SERVERS=1`` is set, in which case they skip with the reason.

Every test works in a namespace of its own, so they share the server without seeing each other.
Nothing here sleeps to let time pass or asserts on durations: TTL arithmetic is checked on the
exptime the adapter sends (and on the server's own view of the remaining TTL), not by waiting.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pymemcache  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymemcache.exceptions import (  # type: ignore[import-untyped]
    MemcacheClientError,
    MemcacheServerError,
    MemcacheUnexpectedCloseError,
    MemcacheUnknownCommandError,
)

from cachespec.backends import (
    NO_VALUE,
    BackendFull,
    BackendUnavailable,
    CacheError,
    ConfigurationError,
    Unsupported,
    ValueTooLarge,
)
from cachespec.backends.memcached import (
    CAS_ATTEMPTS,
    DIGEST_MARKER,
    ITEM_OVERHEAD_MARGIN,
    MAX_KEY_BYTES,
    RELATIVE_EXPTIME_LIMIT,
    TTL_RESOLUTION,
    MemcachedBackend,
    MemcachedBackendWithoutClear,
    key_body,
    memcached_from_url,
    relative_exptime,
)
from cachespec.backends.urls import BackendURL
from cachespec.conformance.servers import Reaper
from cachespec.conformance.target import TargetError, resolve_target
from cachespec.spec import MEMCACHED_EVICTION, NoEviction

pytestmark = pytest.mark.memcached

MEMCACHED = shutil.which("memcached")
FORTY_DAYS = 40 * 86_400


# ------------------------------------------------------------------------ the throwaway server
@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    reaper: Reaper  # stops it if pytest is killed (docs/design.md)

    @property
    def url(self) -> str:
        return f"memcached://127.0.0.1:{self.port}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_version(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"version\r\n")
            return conn.recv(64).startswith(b"VERSION ")
    except OSError:
        return False


def start_server(*extra: str) -> Server:
    """Start memcached on a free port; return once it answers ``version`` (bounded poll)."""
    require_memcached()
    assert MEMCACHED is not None
    for _ in range(3):  # the free port can be taken between the probe and memcached's bind
        port = _free_port()
        argv = [MEMCACHED, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64", *extra]
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        reaper = Reaper(process.pid)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            if _answers_version(port):
                return Server(port, process, reaper)
            time.sleep(0.005)  # poll interval, not a wait for an outcome
        stop_server(Server(port, process, reaper))
    pytest.fail(f"memcached did not start: {argv}")


def stop_server(server: Server) -> None:
    """SIGTERM, a bounded wait, then SIGKILL: no process is left either way."""
    process = server.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process.stderr is not None:
        process.stderr.close()
    server.reaper.dismiss()


def require_memcached() -> None:
    if MEMCACHED is not None:
        return
    reason = "the memcached binary is not installed"
    if os.environ.get("CACHESPEC_ALLOW_NO_SERVERS") == "1":
        pytest.skip(reason)
    pytest.fail(f"{reason} (set CACHESPEC_ALLOW_NO_SERVERS=1 to skip)")


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    require_memcached()
    running = start_server()
    yield running
    stop_server(running)
    assert running.process.poll() is not None


Factory = Callable[..., MemcachedBackend]


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make(server: Server, namespace: str) -> Iterator[Factory]:
    """Backends on the test's namespace (or another one), closed at the end of the test."""
    made: list[MemcachedBackend] = []

    def build(query: str = "", *, ns: str | None = None, **kwargs: Any) -> MemcachedBackend:
        url = f"{server.url}?namespace={ns or namespace}" + (f"&{query}" if query else "")
        if kwargs:
            parsed = BackendURL(url)
            backend = MemcachedBackend(
                "127.0.0.1",
                server.port,
                namespace=parsed.options.get("namespace", namespace),
                **kwargs,
            )
        else:
            backend = memcached_from_url(BackendURL(url))
        made.append(backend)
        return backend

    yield build
    for backend in made:
        backend.close()


@pytest.fixture
def raw(server: Server) -> Iterator[Any]:
    client = pymemcache.Client(
        ("127.0.0.1", server.port), default_noreply=False, connect_timeout=2, timeout=2
    )
    yield client
    client.close()


class Spy:
    """Wraps the backend's pymemcache client and records every call (name, args, kwargs)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            return method(*args, **kwargs)

        return call

    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]


def spy_on(backend: MemcachedBackend) -> Spy:
    spy = Spy(backend._client)
    backend._client = spy
    return spy


def wire_commands(wire: bytes) -> list[list[bytes]]:
    """The command lines of a pipelined write (``pipeline``'s wire), each split in words;
    a storage command's data block is skipped."""
    commands: list[list[bytes]] = []
    at = 0
    while at < len(wire):
        end = wire.index(b"\r\n", at)
        words = wire[at:end].split(b" ")
        commands.append(words)
        at = end + 2
        if words[0] in (b"set", b"add"):
            at += int(words[4]) + 2
    return commands


def pipelined(spy: Spy) -> list[list[list[bytes]]]:
    """The commands of each ``pipeline`` call the spy saw (``mn`` is added by the client)."""
    return [wire_commands(args[0]) for name, args, _ in spy.calls if name == "pipeline"]


def stored_exptimes(spy: Spy) -> list[int]:
    """The exptime sent with each set/add (one per batch)/cas, in order."""
    found: list[int] = []
    for name, args, _ in spy.calls:
        if name == "pipeline":
            stores = [w for w in wire_commands(args[0]) if w[0] in (b"set", b"add")]
            found.extend(sorted({int(words[3]) for words in stores}))
        elif name == "cas" and len(args) == 4:
            found.append(args[3])
    return found


def remaining_ttl(raw: Any, server_key: str) -> int:
    """The server's own view of an item's remaining TTL (meta ``mg <key> t``; -1: none)."""
    reply: bytes = raw.raw_command(f"mg {server_key} t".encode("ascii"), b"\r\n")
    flags = dict((token[:1], token[1:]) for token in reply.split()[1:])
    return int(flags[b"t"])


def stats_time(raw: Any) -> int:
    return int(raw.stats()[b"time"])


# ------------------------------------------------------------------------------- round trips
def test_round_trips_including_falsy_values_and_misses(make: Factory) -> None:
    cache = make()
    values = {"empty": b"", "zero": b"0", "nul": b"\x00", "false": b"False", "big": b"x" * 100_000}
    for key, value in values.items():
        cache.set(key, value)
    for key, value in values.items():
        assert cache.get(key) == value
    assert cache.get("absent") is NO_VALUE
    assert cache.get_many(["empty", "absent", "zero", "zero"]) == {"empty": b"", "zero": b"0"}
    assert cache.get_many([]) == {}
    cache.set("empty", b"replaced")
    assert cache.get("empty") == b"replaced"


def test_add_is_set_if_absent_and_delete_is_idempotent(make: Factory) -> None:
    cache = make()
    assert cache.add("k", b"first") is True
    assert cache.add("k", b"second") is False
    assert cache.get("k") == b"first"
    cache.delete("k")
    cache.delete("k")
    assert cache.get("k") is NO_VALUE
    cache.set_many({"a": b"1", "b": b"2", "c": b""})
    cache.delete_many(["a", "c", "never-there", "a"])
    assert cache.get_many(["a", "b", "c"]) == {"b": b"2"}
    cache.set_many({})
    cache.delete_many([])


def test_add_is_atomic_across_threads(make: Factory) -> None:
    cache = make()
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def contend(n: int) -> None:
        barrier.wait()
        results.append(cache.add("lock", str(n).encode()))

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert cache.guarantees.thread_safe


def test_set_replaces_the_ttl_and_none_means_no_expiry(make: Factory, raw: Any) -> None:
    cache = make()
    cache.set("k", b"v", ttl=100)
    assert 100 <= remaining_ttl(raw, cache.server_key("k")) <= relative_exptime(100)
    cache.set("k", b"v2")
    assert remaining_ttl(raw, cache.server_key("k")) == -1
    assert cache.get("k") == b"v2"


# -------------------------------------------------------------------------------------- keys
def tricky_keys(budget: int) -> list[str]:
    return [
        "",
        "plain",
        "a" * budget,  # the longest plain key
        "b" * (budget + 1),  # one over: digest
        "c" * 250,
        "c" * 251,
        "x" * 10_000,
        "with space",
        "tab\there",
        "new\nline",
        "cr\r",
        "nul\x00",
        "del\x7f",
        "bell\x07",
        "\x1f",
        "é",
        "日本語",
        "emoji \U0001f600",
        "\ud800",  # lone high surrogate
        "\udfff",
        "\ud83d\ude00",  # a surrogate pair as two code points, not U+1F600
        DIGEST_MARKER + hashlib.sha256(b"plain").hexdigest(),  # looks like the digest of "plain"
        DIGEST_MARKER,
        "#x",
        "ns:1:collide",
    ]


def test_every_key_is_stored_and_distinct(make: Factory, raw: Any) -> None:
    cache = make()
    keys = tricky_keys(cache.plain_key_budget)
    assert len(set(keys)) == len(keys)
    for n, key in enumerate(keys):
        cache.set(key, str(n).encode())
    for n, key in enumerate(keys):
        assert cache.get(key) == str(n).encode(), repr(key)
    assert cache.get_many(keys) == {key: str(n).encode() for n, key in enumerate(keys)}
    names = [cache.server_key(key) for key in keys]
    assert len(set(names)) == len(keys)
    for name in names:
        encoded = name.encode("ascii")
        assert len(encoded) <= MAX_KEY_BYTES
        assert name.isprintable()
        assert " " not in name
    for n, key in enumerate(keys):  # what the server holds under each mapped key
        assert raw.get(cache.server_key(key)) == str(n).encode()


def test_plain_keys_are_kept_and_others_hashed_whole(make: Factory) -> None:
    cache = make()
    budget = cache.plain_key_budget
    prefix = cache.server_key("")
    assert prefix.startswith(f"{cache.namespace}:")
    assert prefix.endswith(":")
    assert cache.server_key("user:42") == prefix + "user:42"
    assert cache.server_key("a" * budget) == prefix + "a" * budget
    assert len((prefix + "a" * budget).encode()) <= MAX_KEY_BYTES
    long_key = "b" * (budget + 1)
    digest = hashlib.sha256(long_key.encode()).hexdigest()
    assert cache.server_key(long_key) == f"{prefix}#{digest}"
    lookalike = "#" + hashlib.sha256(b"plain").hexdigest()
    assert cache.server_key(lookalike) != cache.server_key("plain")
    assert (
        cache.server_key(lookalike) == prefix + "#" + hashlib.sha256(lookalike.encode()).hexdigest()
    )
    lone = "\ud800"
    assert cache.server_key(lone).endswith(
        hashlib.sha256(lone.encode("utf-8", "surrogatepass")).hexdigest()
    )


@given(st.text(), st.text(), st.integers(min_value=65, max_value=200))
def test_key_bodies_are_injective(a: str, b: str, budget: int) -> None:
    assert (key_body(a, budget) == key_body(b, budget)) == (a == b)
    for key in (a, b):
        body = key_body(key, budget)
        assert body.isascii()
        assert body.isprintable()
        assert " " not in body
        assert len(body) <= max(budget, 65)


# -------------------------------------------------------------------------------------- TTLs
def test_relative_exptime_never_lets_an_entry_die_early() -> None:
    # N = ceil(ttl + 0.1) + 2: the entry lives more than N - 2.1 >= ttl seconds.
    assert relative_exptime(1.5) == 4
    assert relative_exptime(1) == 4
    assert relative_exptime(0.001) == 3
    assert relative_exptime(0.9) == 3
    assert relative_exptime(2.95) == 6
    for ttl in (0.001, 0.25, 0.5, 0.9, 0.95, 1, 1.5, 2.5, 10, 59.99, 3600):
        n = relative_exptime(ttl)
        assert n - 2.1 >= ttl - 1e-9  # shortest life on the drifting clock (float rounding)
        assert n + 1.1 - ttl <= 4.2 <= TTL_RESOLUTION  # longest lateness


def test_exptime_sent_for_relative_ttls_and_no_ttl(make: Factory, raw: Any) -> None:
    cache = make()
    spy = spy_on(cache)
    cache.set("a", b"v", ttl=1.5)
    cache.add("b", b"v", ttl=10)
    cache.set_many({"c": b"v"}, ttl=0.25)
    cache.set("d", b"v")
    assert stored_exptimes(spy) == [4, 13, 3, 0]
    assert "stats" not in spy.names()  # relative TTLs need no server time
    assert relative_exptime(1.5) - 1 <= remaining_ttl(raw, cache.server_key("a")) <= 4


def test_a_forty_day_ttl_is_an_absolute_time_on_the_servers_clock(make: Factory, raw: Any) -> None:
    cache = make()
    spy = spy_on(cache)
    before = stats_time(raw)
    cache.set("k", b"v", ttl=FORTY_DAYS)
    after = stats_time(raw)
    [sent] = stored_exptimes(spy)
    assert before + FORTY_DAYS + 3 <= sent <= after + FORTY_DAYS + 4
    assert spy.names().count("stats") == 1  # the server's clock, read once
    assert cache.get("k") == b"v"
    assert FORTY_DAYS + 1 <= remaining_ttl(raw, cache.server_key("k")) <= FORTY_DAYS + 4


def test_the_relative_form_is_used_up_to_thirty_days(make: Factory) -> None:
    cache = make()
    spy = spy_on(cache)
    cache.set("last-relative", b"v", ttl=RELATIVE_EXPTIME_LIMIT - 2.1)
    cache.set("first-absolute", b"v", ttl=RELATIVE_EXPTIME_LIMIT - 2)
    relative, absolute = stored_exptimes(spy)
    assert relative == RELATIVE_EXPTIME_LIMIT
    assert absolute > RELATIVE_EXPTIME_LIMIT * 100  # a Unix time


@pytest.mark.parametrize("ttl", [RELATIVE_EXPTIME_LIMIT - 3, 2_592_000, 2_592_001, FORTY_DAYS])
def test_the_thirty_day_rule_end_to_end(make: Factory, raw: Any, ttl: int) -> None:
    # Sent as memcached's exptime 2,592,001 this entry would expire at once (docs/facts.md).
    cache = make()
    cache.set("k", b"v", ttl=ttl)
    assert cache.get("k") == b"v"
    assert ttl <= remaining_ttl(raw, cache.server_key("k")) + 1


def test_max_ttl_is_refused_beyond_and_fits_32_bits(make: Factory, raw: Any) -> None:
    cache = make()
    limit = cache.guarantees.max_ttl
    assert limit is not None
    assert limit >= 31_536_000  # a year: the suite's longest TTL
    assert stats_time(raw) + limit + 10 < 2**31
    cache.set("year", b"v", ttl=limit)
    assert cache.get("year") == b"v"
    with pytest.raises(ValueError, match="max_ttl"):
        cache.set("k", b"v", ttl=limit + 1)
    assert cache.get("k") is NO_VALUE


# ------------------------------------------------------------------------------ round trips
def test_one_round_trip_for_reads_and_batches(make: Factory) -> None:
    cache = make(namespace_refresh=60)
    keys = [f"k{n}" for n in range(100)]
    cache.set_many({key: b"v" for key in keys})
    spy = spy_on(cache)
    assert len(cache.get_many(keys)) == 100
    assert spy.names() == ["fetch"]
    cache.set_many({key: b"w" for key in keys}, ttl=60)
    cache.delete_many(keys[:50])
    assert cache.get("k99") == b"w"
    assert spy.names() == ["fetch", "pipeline", "pipeline", "fetch"]
    # A generation confirmed 60 s ago or less: the writes go without the counter.
    assert [[words[0] for words in batch][:1] for batch in pipelined(spy)] == [
        [b"set"],
        [b"delete"],
    ]


def test_exact_writes_read_the_generation_in_the_same_round_trip(make: Factory) -> None:
    cache = make()  # namespace_refresh=0, the default
    spy = spy_on(cache)
    cache.set("k", b"v")
    cache.set_many({"a": b"1", "b": b"2"})
    cache.add("c", b"3")
    cache.delete_many(["a", "b"])
    assert cache.get_many(["k", "a", "b", "c"]) == {"k": b"v", "c": b"3"}
    assert spy.names() == ["pipeline"] * 4 + ["fetch"]
    counter = [b"get", cache._counter_key.encode()]
    assert [[words[0] for words in batch] for batch in pipelined(spy)] == [
        [b"get", b"set"],
        [b"get", b"set", b"set"],
        [b"get", b"add"],
        [b"get", b"delete", b"delete"],
    ]
    assert all(batch[0] == counter for batch in pipelined(spy))


def test_a_write_after_another_clients_clear_is_sent_again_under_the_new_generation(
    make: Factory,
) -> None:
    a = make()
    b = make()
    a.set("k", b"old")
    b.clear()  # a still holds the generation it saw before
    spy = spy_on(a)
    a.set("k", b"new")
    assert spy.names() == ["pipeline", "pipeline"]  # under the old generation, then again
    first, second = pipelined(spy)
    assert first[1][1] != second[0][1]  # two different server keys: two generations
    assert b.get("k") == b"new"
    assert a.add("k", b"other") is False  # a now writes in the current generation at once
    assert spy.names() == ["pipeline"] * 3


def test_every_call_waits_for_the_reply(make: Factory) -> None:
    cache = make()
    assert cache._client.default_noreply is False  # type: ignore[attr-defined]
    spy = spy_on(cache)
    cache.set("a", b"1", ttl=5)
    cache.set_many({"b": b"2"})
    cache.add("c", b"3")
    cache.delete("a")
    cache.delete_many(["b"])
    cache.clear()
    writes = [call for call in spy.calls if call[0] not in ("fetch", "stats")]
    assert [name for name, _, _ in writes] == ["pipeline"] * 5 + ["incr"]
    # The pipelined commands end with the meta no-op, whose MN the client waits for; none
    # of them asks for no reply.
    assert not any(b"noreply" in words for batch in pipelined(spy) for words in batch)
    assert writes[-1][2].get("noreply") is False


# ------------------------------------------------------------------------------------ values
def test_an_oversize_value_is_refused_before_anything_is_sent(make: Factory) -> None:
    cache = make()
    limit = cache.guarantees.max_value_size
    assert limit == 1024 * 1024 - ITEM_OVERHEAD_MARGIN  # the server runs with -I 1m
    cache.set("k", b"old")
    spy = spy_on(cache)
    too_big = b"x" * (limit + 1)
    with pytest.raises(ValueTooLarge) as caught:
        cache.set("k", too_big)
    assert (caught.value.size, caught.value.limit) == (limit + 1, limit)
    with pytest.raises(ValueTooLarge):
        cache.set_many({"fine": b"v", "k": too_big})
    with pytest.raises(ValueTooLarge):
        cache.add("new", too_big)
    assert spy.calls == []
    assert cache.get_many(["k", "fine", "new"]) == {"k": b"old"}


def test_the_largest_value_fits_under_the_longest_key(make: Factory) -> None:
    cache = make()
    limit = cache.guarantees.max_value_size
    assert limit is not None
    longest = "L" * cache.plain_key_budget
    value = b"v" * limit
    cache.set(longest, value)
    cache.set("\u00e9" * 300, value)  # a digest key
    assert cache.get(longest) == value
    assert cache.get("\u00e9" * 300) == value


def test_the_default_limit_follows_the_servers_item_size() -> None:
    small = start_server("-I", "512k")
    try:
        cache = memcached_from_url(BackendURL(f"{small.url}?namespace=small"))
        limit = 512 * 1024 - ITEM_OVERHEAD_MARGIN
        assert cache.guarantees.max_value_size == limit
        cache.set("L" * cache.plain_key_budget, b"v" * limit)  # fits under the longest key
        with pytest.raises(ValueTooLarge):
            cache.set("k", b"v" * (limit + 1))
        cache.close()
    finally:
        stop_server(small)


def test_the_max_value_size_option(make: Factory, server: Server) -> None:
    cache = make("max_value_size=100")
    cache.set("k", b"x" * 100)
    with pytest.raises(ValueTooLarge):
        cache.set("k", b"x" * 101)
    assert cache.get("k") == b"x" * 100
    with pytest.raises(ConfigurationError, match="max_value_size=1048065 is over 1048064"):
        make("max_value_size=1048065")


STORE_CALLS = ("set", "set_many", "add", "delete", "incr", "pipeline", "one_line")


class Failing:
    """A client whose store calls (or the ``names`` given) fail the way pymemcache does.

    ``error`` is raised by the call (a dropped connection, a timeout). ``refused`` makes
    the server's answer to each store NOT_STORED; ``status`` replaces the answer to every
    command of a pipelined write with that line (a ``SERVER_ERROR``, say), as the server
    would send it.
    """

    def __init__(
        self,
        inner: Any,
        error: Exception | None = None,
        refused: bool = False,
        names: tuple[str, ...] = STORE_CALLS,
        status: bytes | None = None,
    ) -> None:
        self.inner = inner
        self.error = error
        self.refused = refused
        self.names = names
        self.status = status

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        if name not in self.names:
            return method

        def fail(*args: Any, **kwargs: Any) -> Any:
            if self.error is not None:
                raise self.error
            if name == "pipeline":
                wire, parse = args
                return method(wire, lambda reply: parse(self._rewrite(reply)))
            if name == "one_line":  # a namespace without clear: one command, one line
                line = self._rewrite(method(*args))
                if line.startswith(b"SERVER_ERROR "):  # raised as the real read raises it
                    raise MemcacheServerError(line.partition(b" ")[2])
                return line
            if name == "set_many":
                return list(args[0])
            return False

        return fail

    def _rewrite(self, reply: bytes) -> bytes:
        answers = {b"STORED", b"NOT_STORED", b"DELETED", b"NOT_FOUND"}
        new = self.status if self.status is not None else b"NOT_STORED"
        if self.status is None and not self.refused:
            return reply
        lines = reply.split(b"\r\n")
        return b"\r\n".join(new if line in answers else line for line in lines)


@pytest.mark.parametrize("query", ["", "clear=none"])
def test_a_server_refusal_is_value_too_large_and_says_the_old_entry_may_be_gone(
    make: Factory, query: str
) -> None:
    cache = make(query)
    too_large = b"SERVER_ERROR object too large for cache"
    cache._client = Failing(cache._client, status=too_large)
    with pytest.raises(ValueTooLarge, match="old entry may be gone") as caught:
        cache.set("k", b"x" * 10)
    assert caught.value.key == "k"
    assert caught.value.size == 10
    with pytest.raises(ValueTooLarge, match="old entry may be gone") as caught:
        cache.set_many({"a": b"x", "b": b"xx"})
    assert (caught.value.key, caught.value.size) == ("a", 1)  # the first item refused
    with pytest.raises(ValueTooLarge, match="nothing was written"):
        cache.add("k", b"x")


@pytest.mark.parametrize("query", ["", "clear=none"])
def test_a_write_refused_for_want_of_memory_is_backend_full_naming_the_key(
    make: Factory, query: str
) -> None:
    cache = make(query)
    cache._client = Failing(cache._client, status=b"SERVER_ERROR out of memory storing object")
    with pytest.raises(BackendFull, match="old entry") as caught:
        cache.set("k", b"v")
    assert caught.value.keys == ("k",)
    with pytest.raises(BackendFull) as caught:
        cache.set_many({"a": b"1", "b": b"2"})
    assert caught.value.keys == ("a",)  # the first item refused
    with pytest.raises(BackendFull):
        cache.add("k", b"v")
    # Whatever the option says: the option only changes what the namespace declares.
    assert cache.guarantees.eviction == NoEviction()
    assert make("eviction=server").guarantees.eviction == MEMCACHED_EVICTION


def test_with_its_counter_evicted_and_no_room_for_it_reads_miss_and_clear_is_done(
    make: Factory,
) -> None:
    cache = make()
    cache.set("k", b"v")
    real = cache._client
    real.delete(cache._counter_key)  # as memcached would evict it
    # No room to create it again: the counter's add is refused, as pymemcache reports it.
    cache._client = Failing(
        real, MemcacheServerError(b"out of memory storing object"), names=("add",)
    )
    assert cache.get("k") is NO_VALUE
    assert cache.get_many(["k", "j"]) == {}
    cache.clear()  # nothing is reachable without a counter: done, not an error
    with pytest.raises(BackendFull):
        cache.set("k", b"w")  # a write must create the counter, and cannot
    cache._client = real
    assert cache.get("k") is NO_VALUE  # a fresh random generation: the old entry stays gone
    cache.set("k", b"w")
    assert cache.get("k") == b"w"


def test_a_value_the_server_refuses_mid_batch_names_its_key_and_the_stream_stays_in_step(
    make: Factory,
) -> None:
    cache = make()
    cache._max_value_size = 4 * 1024 * 1024  # past the client's own check, as after a restart
    big = b"x" * (2 * 1024 * 1024)
    with pytest.raises(ValueTooLarge, match="old entry may be gone") as caught:
        cache.set_many({"a": b"1", "b": big, "c": b"3"})
    assert (caught.value.key, caught.value.size) == ("b", len(big))
    assert cache.get_many(["a", "b", "c"]) == {"a": b"1", "c": b"3"}
    assert len(cache._client.idle) == 1  # type: ignore[attr-defined]


def test_driver_errors_become_typed_errors(make: Factory) -> None:
    cache = make()
    real = cache._client
    cache._client = Failing(real, status=b"CLIENT_ERROR bad data chunk")
    with pytest.raises(CacheError, match="bad data chunk"):
        cache.set("k", b"v")
    cache._client = Failing(real, status=b"SERVER_ERROR out of memory storing object")
    with pytest.raises(BackendFull, match="out of memory storing object"):
        cache.add("k", b"v")
    cache._client = Failing(real, MemcacheUnexpectedCloseError())
    with pytest.raises(BackendUnavailable, match=re.escape(cache._label)):
        cache.delete("k")
    cache._client = Failing(real, TimeoutError("timed out"))
    with pytest.raises(BackendUnavailable, match="timed out"):
        cache.clear()
    cache._client = Failing(real, refused=True)
    with pytest.raises(CacheError, match=r"did not store key 'k'"):
        cache.set("k", b"v")
    with pytest.raises(CacheError, match=r"did not store keys \['a', 'b'\]"):
        cache.set_many({"b": b"v", "a": b"v"})
    cache._client = real
    generation = cache._generation
    cache._client = Failing(real, TimeoutError("timed out"))
    with pytest.raises(BackendUnavailable):
        cache.clear()
    assert cache._generation is generation  # a failed clear leaves the client as it was


# ------------------------------------------------------------------- compare-and-set / delete
def test_the_facts_the_atomic_operations_rest_on(raw: Any, namespace: str) -> None:
    """memcached 1.6.18: ``md <key> C<token>`` answers HD / EX / NF, and every write, even of
    the same bytes, gives the item a new CAS token (so a stale token is not a changed value)."""
    key = f"{namespace}:fact"
    raw.set(key, b"v")
    _, token = raw.gets(key)
    raw.set(key, b"v")  # the same bytes again
    value, fresh = raw.gets(key)
    assert value == b"v"
    assert fresh != token
    assert raw.cas(key, b"w", token) is False  # EXISTS: the stale token is refused
    assert raw.raw_command(f"md {key} C{int(token)}".encode(), b"\r\n") == b"EX"
    assert raw.get(key) == b"v"
    assert raw.raw_command(f"md {key} C{int(fresh)}".encode(), b"\r\n") == b"HD"
    assert raw.get(key) is None
    assert raw.raw_command(f"md {key} C{int(fresh)}".encode(), b"\r\n") == b"NF"
    assert raw.cas(key, b"w", fresh) is None  # NOT_FOUND


def test_compare_and_set_replaces_only_a_matching_live_value(make: Factory, raw: Any) -> None:
    cache = make()
    assert cache.guarantees.compare_and_set is True
    cache.set("k", b"red")
    assert cache.compare_and_set("k", b"green", b"blue") is False  # mismatch: no write
    assert cache.compare_and_set("k", b"re", b"blue") is False  # byte for byte, not a prefix
    assert cache.compare_and_set("k", b"red\x00", b"blue") is False
    assert cache.get("k") == b"red"
    assert cache.compare_and_set("k", b"red", b"blue") is True
    assert cache.get("k") == b"blue"
    assert cache.compare_and_set("k", b"red", b"again") is False  # the old value is gone
    assert cache.compare_and_set("absent", b"", b"x") is False  # missing never matches
    assert cache.get("absent") is NO_VALUE
    cache.set("empty", b"")
    assert cache.compare_and_set("empty", b"", b"") is True  # falsy values compare too
    assert cache.get("empty") == b""
    raw.set(cache.server_key("expired"), b"v", expire=-1)  # stored, already expired
    assert cache.compare_and_set("expired", b"v", b"w") is False
    assert cache.get("expired") is NO_VALUE


def test_compare_and_delete_deletes_only_a_matching_live_value(make: Factory, raw: Any) -> None:
    cache = make()
    cache.set("k", b"lease-1")
    assert cache.compare_and_delete("k", b"lease-2") is False
    assert cache.compare_and_delete("k", b"lease-") is False
    assert cache.get("k") == b"lease-1"
    assert cache.compare_and_delete("k", b"lease-1") is True
    assert cache.get("k") is NO_VALUE
    assert raw.get(cache.server_key("k")) is None  # really gone: no tombstone
    assert cache.add("k", b"next") is True  # so add sees the key as absent
    assert cache.compare_and_delete("k", b"lease-1") is False
    assert cache.compare_and_delete("never", b"") is False
    raw.set(cache.server_key("expired"), b"v", expire=-1)
    assert cache.compare_and_delete("expired", b"v") is False


def test_the_exchanges_and_every_reply_is_waited_for(make: Factory) -> None:
    cache = make()  # namespace_refresh=0: the generation is read first, as for set
    cache.set("k", b"a")
    name = cache.server_key("k")
    spy = spy_on(cache)
    assert cache.compare_and_set("k", b"a", b"b") is True
    assert spy.names() == ["fetch", "gets", "cas"]
    _, (cas_name, data, token, expire), kwargs = spy.calls[2]
    assert (cas_name, data, expire, kwargs) == (name, b"b", 0, {"noreply": False})
    assert spy.calls[1][1] == (name,)
    assert re.fullmatch(rb"[0-9]+", token)
    spy.calls.clear()
    assert cache.compare_and_delete("k", b"b") is True
    assert spy.names() == ["fetch", "gets", "raw_command"]
    _, (command, end), _ = spy.calls[2]
    assert end == b"\r\n"
    # Exactly "md <key> C<token>": no q flag, so the server always answers.
    assert re.fullmatch(rb"md " + re.escape(name.encode()) + rb" C[0-9]+", command)
    spy.calls.clear()
    assert cache.compare_and_set("k", b"b", b"c") is False  # a miss: nothing is written
    assert cache.compare_and_delete("k", b"b") is False
    assert spy.names() == ["fetch", "gets", "fetch", "gets"]


def test_every_key_maps_as_in_get_and_set(make: Factory, raw: Any) -> None:
    cache = make()
    for key in tricky_keys(cache.plain_key_budget):
        cache.set(key, b"old")
        assert cache.compare_and_set(key, b"old", b"new") is True, key
        assert raw.get(cache.server_key(key)) == b"new"
        assert cache.get(key) == b"new"
    for key in tricky_keys(cache.plain_key_budget):
        assert cache.compare_and_delete(key, b"new") is True, key
        assert raw.get(cache.server_key(key)) is None
    assert cache.get_many(tricky_keys(cache.plain_key_budget)) == {}


def test_a_clear_by_another_client_is_seen(make: Factory) -> None:
    mine, other = make(), make()
    mine.set("k", b"v")
    mine.set("j", b"v")
    other.clear()
    assert mine.compare_and_set("k", b"v", b"w") is False  # the entry is unreachable
    assert mine.compare_and_delete("j", b"v") is False
    assert mine.get_many(["k", "j"]) == {}
    assert other.get_many(["k", "j"]) == {}


def test_compare_and_set_replaces_the_ttl_as_set_does(make: Factory, raw: Any) -> None:
    cache = make()
    cache.set("k", b"a", ttl=100)
    spy = spy_on(cache)
    assert cache.compare_and_set("k", b"a", b"b") is True  # ttl=None: no expiry, as set
    assert remaining_ttl(raw, cache.server_key("k")) == -1
    assert cache.compare_and_set("k", b"b", b"c", ttl=1.5) is True
    assert cache.compare_and_set("k", b"c", b"d", ttl=10) is True
    cache.set("other", b"v", ttl=10)
    assert stored_exptimes(spy) == [0, relative_exptime(1.5), 13, 13]  # as set computes it
    assert "stats" not in spy.names()
    assert 10 <= remaining_ttl(raw, cache.server_key("k")) <= 13
    assert cache.compare_and_set("k", b"nope", b"e", ttl=1) is False  # no write, TTL kept
    assert stored_exptimes(spy) == [0, 4, 13, 13]
    assert 0 < remaining_ttl(raw, cache.server_key("k")) <= 13


def test_a_forty_day_compare_and_set_is_absolute_on_the_servers_clock(
    make: Factory, raw: Any
) -> None:
    cache = make()
    cache.set("k", b"a")
    spy = spy_on(cache)
    before = stats_time(raw)
    assert cache.compare_and_set("k", b"a", b"b", ttl=FORTY_DAYS) is True
    after = stats_time(raw)
    [sent] = stored_exptimes(spy)
    assert before + FORTY_DAYS + 3 <= sent <= after + FORTY_DAYS + 4
    assert spy.names() == ["fetch", "gets", "stats", "cas"]  # the time read just before
    assert FORTY_DAYS + 1 <= remaining_ttl(raw, cache.server_key("k")) <= FORTY_DAYS + 4
    assert cache.compare_and_set("k", b"x", b"c", ttl=FORTY_DAYS) is False
    assert spy.names().count("stats") == 1  # no match: no server time needed


class Interfering:
    """After each ``gets`` returns (before the conditional write), runs ``meddle(n)``, n the
    number of ``gets`` so far: another client writing between the read and the write."""

    def __init__(self, inner: Any, meddle: Callable[[int], None]) -> None:
        self.inner = inner
        self.meddle = meddle
        self.gets_calls = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        if name != "gets":
            return method

        def gets(*args: Any, **kwargs: Any) -> Any:
            found = method(*args, **kwargs)
            self.gets_calls += 1
            self.meddle(self.gets_calls)
            return found

        return gets


def interfere(cache: MemcachedBackend, meddle: Callable[[int], None]) -> Interfering:
    wrapper = Interfering(cache._client, meddle)
    cache._client = wrapper
    return wrapper


def test_a_write_between_the_read_and_the_cas_wins(make: Factory, raw: Any) -> None:
    cache = make()
    cache.set("k", b"start", ttl=100)
    name = cache.server_key("k")
    meddler = interfere(cache, lambda n: raw.set(name, b"theirs") if n == 1 else None)
    assert cache.compare_and_set("k", b"start", b"mine") is False  # EXISTS, then no match
    assert meddler.gets_calls == 2
    assert cache.get("k") == b"theirs"  # nothing overwritten
    assert remaining_ttl(raw, name) == -1  # their TTL (none), not ours
    cache.set("k", b"start")
    meddler.gets_calls = 0
    assert cache.compare_and_delete("k", b"start") is False
    assert meddler.gets_calls == 2
    assert cache.get("k") == b"theirs"


def test_a_delete_between_the_read_and_the_cas_is_a_miss(make: Factory, raw: Any) -> None:
    cache = make()
    cache.set("k", b"start")
    name = cache.server_key("k")
    interfere(cache, lambda n: raw.delete(name))
    assert cache.compare_and_set("k", b"start", b"mine") is False  # NOT_FOUND
    assert cache.get("k") is NO_VALUE  # cas never creates an entry
    cache.set("k", b"start")
    assert cache.compare_and_delete("k", b"start") is False  # NF
    assert cache.get("k") is NO_VALUE


def test_the_same_bytes_rewritten_in_between_still_match(make: Factory, raw: Any) -> None:
    """A stale token with the expected bytes still there: False would be wrong (the value
    equalled ``expected`` throughout), so the exchange is repeated with the new token."""
    cache = make()
    cache.set("k", b"start")
    name = cache.server_key("k")
    meddler = interfere(cache, lambda n: raw.set(name, b"start") if n == 1 else None)
    assert cache.compare_and_set("k", b"start", b"mine", ttl=10) is True
    assert meddler.gets_calls == 2
    assert cache.get("k") == b"mine"
    assert 0 < remaining_ttl(raw, name) <= 13
    cache.set("k", b"start")
    meddler.gets_calls = 0
    assert cache.compare_and_delete("k", b"start") is True
    assert meddler.gets_calls == 2
    assert cache.get("k") is NO_VALUE


def test_endless_rewrites_of_the_same_bytes_are_an_error_not_a_wrong_answer(
    make: Factory, raw: Any
) -> None:
    cache = make()
    cache.set("k", b"start")
    name = cache.server_key("k")
    meddler = interfere(cache, lambda n: raw.set(name, b"start"))
    with pytest.raises(CacheError, match=f"gave up after {CAS_ATTEMPTS} attempts"):
        cache.compare_and_set("k", b"start", b"mine")
    assert meddler.gets_calls == CAS_ATTEMPTS
    with pytest.raises(CacheError, match="compare_and_delete"):
        cache.compare_and_delete("k", b"start")
    assert cache.get("k") == b"start"


def test_of_racing_compare_and_sets_exactly_one_wins(make: Factory) -> None:
    cache = make()
    rounds = 5
    results: list[list[bool]] = [[False] * 8 for _ in range(rounds)]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def contend(n: int) -> None:
        try:
            for r in range(rounds):
                barrier.wait(timeout=30)
                if n == 0:
                    cache.set("race", b"start")
                barrier.wait(timeout=30)
                results[r][n] = cache.compare_and_set("race", b"start", f"{n}/{r}".encode())
                barrier.wait(timeout=30)
                if n == 0:
                    [winner] = [i for i, won in enumerate(results[r]) if won]
                    assert cache.get("race") == f"{winner}/{r}".encode()
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(sorted(row) == [False] * 7 + [True] for row in results)


def test_of_racing_compare_and_deletes_exactly_one_wins(make: Factory) -> None:
    cache = make()
    cache.set("lease", b"mine")
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def contend() -> None:
        barrier.wait(timeout=30)
        results.append(cache.compare_and_delete("lease", b"mine"))

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert cache.get("lease") is NO_VALUE


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.compare_and_set(1, b"old", b"v"), TypeError),
        (lambda c: c.compare_and_set(b"k", b"old", b"v"), TypeError),
        (lambda c: c.compare_and_set("k", "old", b"v"), TypeError),
        (lambda c: c.compare_and_set("k", b"old", "v"), TypeError),
        (lambda c: c.compare_and_set("k", b"old", bytearray(b"v")), TypeError),
        (lambda c: c.compare_and_set("k", b"old", None), TypeError),
        (lambda c: c.compare_and_set("k", b"old", b"v", ttl=0), ValueError),
        (lambda c: c.compare_and_set("k", b"old", b"v", ttl=-1), ValueError),
        (lambda c: c.compare_and_set("k", b"old", b"v", ttl=float("nan")), ValueError),
        (lambda c: c.compare_and_set("k", b"old", b"v", ttl=float("inf")), ValueError),
        (lambda c: c.compare_and_set("k", b"old", b"v", ttl="10"), TypeError),
        (lambda c: c.compare_and_set("k", b"old", b"v", ttl=True), TypeError),
        (lambda c: c.compare_and_set("k", b"old", b"v", ttl=2 * 365 * 86_400), ValueError),
        (lambda c: c.compare_and_delete(1, b"old"), TypeError),
        (lambda c: c.compare_and_delete("k", "old"), TypeError),
        (lambda c: c.compare_and_delete("k", None), TypeError),
    ],
)
def test_bad_compare_arguments_raise_and_send_nothing(
    make: Factory, call: Callable[[MemcachedBackend], object], error: type[Exception]
) -> None:
    cache = make()
    cache.set("k", b"old", ttl=100)
    spy = spy_on(cache)
    with pytest.raises(error):
        call(cache)
    assert spy.calls == []
    assert cache.get("k") == b"old"


def test_an_oversize_new_value_is_refused_and_an_oversize_expected_never_matches(
    make: Factory,
) -> None:
    cache = make()
    limit = cache.guarantees.max_value_size
    assert limit is not None
    cache.set("k", b"old")
    spy = spy_on(cache)
    with pytest.raises(ValueTooLarge) as caught:
        cache.compare_and_set("k", b"old", b"x" * (limit + 1))
    assert (caught.value.key, caught.value.size, caught.value.limit) == ("k", limit + 1, limit)
    assert spy.calls == []
    # Never stored by this backend, so never equal to a live value: a plain False.
    assert cache.compare_and_set("k", b"x" * (limit + 1), b"v") is False
    assert cache.compare_and_delete("k", b"x" * (limit + 1)) is False
    assert cache.get("k") == b"old"
    assert cache.compare_and_set("k", b"old", b"y" * limit) is True  # the limit itself fits
    assert cache.get("k") == b"y" * limit


def test_compare_errors_become_typed_errors(make: Factory) -> None:
    cache = make()
    cache.set("k", b"v")
    real = cache._client
    calls = ("gets", "cas", "raw_command")

    def compare_and_set() -> object:
        return cache.compare_and_set("k", b"v", b"w")

    def compare_and_delete() -> object:
        return cache.compare_and_delete("k", b"v")

    for failing, call in [
        ("gets", compare_and_set),
        ("cas", compare_and_set),
        ("gets", compare_and_delete),
        ("raw_command", compare_and_delete),
    ]:
        cache._client = Failing(real, MemcacheUnexpectedCloseError(), names=(failing,))
        with pytest.raises(BackendUnavailable, match=re.escape(cache._label)):
            call()
    cache._client = Failing(real, TimeoutError("timed out"), names=calls)
    with pytest.raises(BackendUnavailable, match=r"compare_and_set failed.*timed out"):
        cache.compare_and_set("k", b"v", b"w")
    with pytest.raises(BackendUnavailable, match=r"compare_and_delete failed.*timed out"):
        cache.compare_and_delete("k", b"v")
    cache._client = Failing(real, MemcacheClientError(b"bad data chunk"), names=calls)
    with pytest.raises(CacheError, match="bad data chunk"):
        cache.compare_and_set("k", b"v", b"w")
    # A server that refuses the value (restarted with a smaller -I): cas, unlike set, leaves
    # the old entry alone (pinned in the next test).
    too_large = MemcacheServerError(b"object too large for cache")
    cache._client = Failing(real, too_large, names=("cas",))
    with pytest.raises(ValueTooLarge, match="nothing was written") as caught:
        cache.compare_and_set("k", b"v", b"x" * 10)
    assert (caught.value.key, caught.value.size) == ("k", 10)
    cache._client = Failing(real, MemcacheUnknownCommandError(b"md"), names=("raw_command",))
    with pytest.raises(CacheError, match="MemcacheUnknownCommandError"):
        cache.compare_and_delete("k", b"v")  # a server without meta commands answers ERROR
    cache._client = real
    assert cache.get("k") == b"v"


class Replying:
    """A client whose ``raw_command`` returns ``reply`` without sending anything."""

    def __init__(self, inner: Any, reply: bytes) -> None:
        self.inner = inner
        self.reply = reply

    def __getattr__(self, name: str) -> Any:
        if name == "raw_command":
            return lambda *args, **kwargs: self.reply
        return getattr(self.inner, name)


@pytest.mark.parametrize(
    ("garble", "why"),
    [
        (lambda reply: b"VALUE x 0 1\r\n", "unexpected reply b'VALUE x 0 1"),
        (lambda reply: reply + b"STORED\r\n", "unexpected reply"),  # one answer too many
    ],
)
def test_a_reply_out_of_shape_is_an_error_and_drops_its_connection(
    make: Factory, garble: Callable[[bytes], bytes], why: str
) -> None:
    cache = make()
    cache.set("k", b"v")
    real = cache._client
    assert len(real.idle) == 1  # type: ignore[attr-defined]

    class Garbling:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def pipeline(self, wire: bytes, parse: Callable[[bytes], Any]) -> Any:
            return real.pipeline(wire, lambda reply: parse(garble(reply)))

    cache._client = Garbling()
    with pytest.raises(CacheError, match=why):
        cache.set("k", b"w")
    assert real.idle == ()  # type: ignore[attr-defined]  # the connection may hold more reply
    cache._client = real
    assert cache.get("k") == b"w"  # the command reached the server; only its reply was lost
    cache.set("k", b"x")  # on a fresh connection
    assert cache.get("k") == b"x"


def test_values_that_look_like_replies_read_back_exactly(make: Factory) -> None:
    cache = make()
    tricky = {
        "a": b"\r\nEND\r\n",
        "b": b"VALUE x 0 3\r\nabc\r\nEND\r\n",
        "c": b"MN\r\n",
        "d": b"",
        "big": b"\r\nEND\r\n" * 140_000,  # about 1 MB: the reply comes in many pieces
    }
    cache.set_many(tricky)
    assert cache.get_many(list(tricky)) == tricky
    for key, value in tricky.items():
        assert cache.get(key) == value


class CannedSocket:
    """A socket whose replies are ``pieces``, one per ``recv``; it records what was sent."""

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = list(pieces)
        self.sent = b""

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def recv(self, size: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""

    def close(self) -> None:
        pass


def canned(cache: MemcachedBackend, *pieces: bytes) -> CannedSocket:
    """Put a canned socket in the backend's one idle connection."""
    (connection,) = cache._client.idle  # type: ignore[attr-defined]
    sock = CannedSocket(*pieces)
    connection.sock = sock
    return sock


def test_a_get_reply_is_read_by_its_lengths_whatever_pieces_it_comes_in(make: Factory) -> None:
    cache = make()
    cache.get("warm")  # one pooled connection
    sock = canned(cache, b"VALUE k 0 5\r", b"\na\r\nEN", b"\r\nEN", b"D\r\n")
    assert cache._client.fetch([b"k"]) == {b"k": b"a\r\nEN"}
    assert sock.sent == b"get k\r\n"
    canned(cache, b"END\r\n")
    assert cache._client.fetch([b"k", b"j"]) == {}


@pytest.mark.parametrize(
    ("pieces", "error", "why"),
    [
        ((b"SERVER_ERROR busy\r\n",), CacheError, "busy"),
        ((b"CLIENT_ERROR bad command line format\r\n",), CacheError, "bad command line"),
        ((b"VALUE <k> 0 1\r\nabc\r\nEND\r\n",), CacheError, "did not end where its length"),
        ((b"END\r\nEND\r\n",), CacheError, "more reply than the get asked for"),
        ((b"VALUE <k> 0 3\r\nab",), None, "closed mid-reply: a get is sent again"),
        ((b"VALUE other 0 1\r\nv\r\nEND\r\n",), CacheError, "a key the get did not ask for"),
    ],
)
def test_a_get_reply_out_of_shape_is_an_error_and_drops_its_connection(
    make: Factory, pieces: tuple[bytes, ...], error: type[Exception] | None, why: str
) -> None:
    cache = make()
    cache.set("k", b"v")
    name = cache.server_key("k").encode()
    sock = canned(cache, *(piece.replace(b"<k>", name) for piece in pieces))
    if error is None:  # on a new connection (backends/memcached/resend.py)
        assert cache.get("k") == b"v", why
        assert [c for c in cache._client.idle if c.sock is sock] == []  # type: ignore[attr-defined]
    else:
        with pytest.raises(error, match=why):
            cache.get("k")
        assert cache._client.idle == ()  # type: ignore[attr-defined]
    assert cache.get("k") == b"v"  # on a fresh connection


def test_a_counter_padded_by_incr_is_the_same_generation_for_a_write(
    make: Factory, raw: Any, namespace: str
) -> None:
    counter = f"{namespace}:generation"
    raw.set(counter, b"7")
    cache = make()
    raw.set(counter, b"7   ")  # how incr leaves a number that got shorter
    spy = spy_on(cache)
    assert cache.add("k", b"v") is True  # stored once, and said so
    assert spy.names() == ["pipeline"]
    assert cache.get("k") == b"v"


def test_a_write_resent_after_a_clear_answers_for_the_new_generation(make: Factory) -> None:
    a = make()
    b = make()
    a.set("k", b"v")
    b.clear()
    assert a.add("k", b"w") is True  # refused in the old generation, stored in the new
    assert b.get("k") == b"w"
    a.set("gone", b"v")
    b.clear()
    b.set("gone", b"new")
    a.delete("gone")  # sent under the old generation first, then again under the new
    assert b.get("gone") is NO_VALUE


def test_a_pipelined_reply_in_pieces_is_read_to_its_end(make: Factory) -> None:
    cache = make()
    cache.get("warm")  # one pooled connection
    sock = canned(cache, b"VALUE c 0 1\r\n7\r\nEN", b"D\r\nSTORED\r\nM", b"N", b"\r\n")
    reply = cache._client.pipeline(b"get c\r\nset k 0 0 1\r\nv\r\n", lambda reply: reply)
    assert reply == b"VALUE c 0 1\r\n7\r\nEND\r\nSTORED\r\n"
    assert sock.sent.endswith(b"mn\r\n")
    assert cache._split_counter("set", reply) == (b"7", b"STORED\r\n")


def test_a_write_that_finds_no_counter_creates_one(make: Factory, raw: Any, namespace: str) -> None:
    a = make()
    a.set("k", b"v")
    assert raw.delete(f"{namespace}:generation")  # as if evicted
    a.set("k2", b"v2")  # sent under the lost generation, then under a new one
    assert raw.get(f"{namespace}:generation").isdigit()
    b = make()
    assert b.get_many(["k", "k2"]) == {"k2": b"v2"}


@pytest.mark.parametrize("version", [b"1.5.22", b"1.6.9"])
def test_a_server_older_than_1_6_10_is_refused(
    make: Factory, monkeypatch: pytest.MonkeyPatch, version: bytes
) -> None:
    client_class = type(make()._client)
    stats = client_class.stats

    def old_stats(self: Any, *args: Any) -> Any:
        found = stats(self, *args)
        if not args:
            found[b"version"] = version
        return found

    monkeypatch.setattr(client_class, "stats", old_stats)
    shown = re.escape(version.decode())
    with pytest.raises(ConfigurationError, match=rf"memcached {shown} is too old; .* 1\.6\.10"):
        make()


def test_an_unexpected_md_reply_is_an_error(make: Factory) -> None:
    cache = make()
    cache.set("k", b"v")
    cache._client = Replying(cache._client, b"OK")
    with pytest.raises(CacheError, match="unexpected reply b'OK' to 'md'"):
        cache.compare_and_delete("k", b"v")


def test_an_oversize_cas_leaves_the_old_entry(raw: Any, namespace: str) -> None:
    """Pins the fact behind "nothing was written" above: unlike ``set``, a refused ``cas``
    does not delete the old item (memcached 1.6.18, default ``-I 1m``)."""
    key = f"{namespace}:big"
    raw.set(key, b"old")
    _, token = raw.gets(key)
    with pytest.raises(MemcacheServerError, match="too large"):
        raw.cas(key, b"x" * (1024 * 1024 + 1), token)
    assert raw.gets(key) == (b"old", token)


def test_a_server_that_goes_away_mid_compare_is_backend_unavailable() -> None:
    doomed = start_server()
    cache = memcached_from_url(BackendURL(f"{doomed.url}?namespace=doomed&timeout=2"))
    try:
        cache.set("k", b"v")
        interfere(cache, lambda n: stop_server(doomed))  # between the gets and the md
        with pytest.raises(BackendUnavailable, match=re.escape(doomed.url)):
            cache.compare_and_delete("k", b"v")
        with pytest.raises(BackendUnavailable, match=re.escape(doomed.url)):
            cache.compare_and_set("k", b"v", b"w")
    finally:
        cache.close()
        stop_server(doomed)


# ------------------------------------------------------------------------------------- clear
def test_clear_touches_only_its_own_namespace(make: Factory, raw: Any, namespace: str) -> None:
    mine = make()
    other = make(ns=namespace + "-other")
    prefix_alike = make(ns=namespace[:-1])  # a namespace that is a prefix of ours
    for cache in (mine, other, prefix_alike):
        cache.set("k", cache.namespace.encode())
    raw.set("rawkey", b"raw")
    raw.set(f"{namespace}:lookalike", b"raw")
    spy = spy_on(mine)
    mine.clear()
    assert spy.names() == ["incr"]  # never flush_all, never a delete
    assert mine.get("k") is NO_VALUE
    assert other.get("k") == other.namespace.encode()
    assert prefix_alike.get("k") == prefix_alike.namespace.encode()
    assert raw.get("rawkey") == b"raw"
    assert raw.get(f"{namespace}:lookalike") == b"raw"
    mine.set("k", b"after")
    assert mine.get("k") == b"after"


def test_other_clients_read_a_clear_at_once(make: Factory) -> None:
    a = make()
    b = make(namespace_refresh=3600)  # reads are exact whatever the refresh
    a.set("k", b"v")
    assert b.get("k") == b"v"
    a.clear()
    assert b.get("k") is NO_VALUE
    assert b.get_many(["k"]) == {}
    b.set("k2", b"written after the clear")  # the read above refreshed b's generation
    assert a.get("k2") == b"written after the clear"


def test_with_refresh_zero_writes_see_a_clear_at_once(make: Factory) -> None:
    a = make()
    b = make()  # namespace_refresh=0
    a.set("warm", b"v")
    assert b.get("warm") == b"v"
    a.clear()
    b.set("k", b"v")
    b.delete("warm")
    assert b.add("fresh", b"v") is True
    assert a.get_many(["k", "fresh"]) == {"k": b"v", "fresh": b"v"}


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_writes_trust_the_cached_generation_for_namespace_refresh_seconds(
    make: Factory,
) -> None:
    # The documented weakening: for up to namespace_refresh seconds after another client's
    # clear, this client's writes may land in the old generation, and are never visible.
    clock = FakeMonotonic()
    a = make()
    b = make(namespace_refresh=5, monotonic=clock)
    a.clear()
    assert b.get("anything") is NO_VALUE  # b confirms the current generation at t = 1000
    a.clear()
    clock.now += 4.9
    b.set("lost", b"v")
    assert a.get("lost") is NO_VALUE
    clock.now += 0.1  # 5 s after b's last confirmation: b reads the generation again
    b.set("seen", b"v")
    assert a.get("seen") == b"v"
    assert b.get("lost") is NO_VALUE  # b's own reads are exact all along


def test_a_clients_own_clear_is_seen_at_once(make: Factory) -> None:
    clock = FakeMonotonic()
    a = make()
    b = make(namespace_refresh=3600, monotonic=clock)
    b.set("k", b"v")
    spy = spy_on(b)
    b.clear()
    b.set("k2", b"v")
    assert spy.names() == ["incr", "pipeline"]  # incr returned the generation: no re-read
    assert [words[0] for words in pipelined(spy)[0]] == [b"set"]
    assert a.get_many(["k", "k2"]) == {"k2": b"v"}


def test_a_lost_counter_empties_the_namespace_and_is_recreated(
    make: Factory, raw: Any, namespace: str
) -> None:
    a = make()
    b = make()
    a.set("k", b"v")
    counter = f"{namespace}:generation"
    assert raw.delete(counter)  # as if evicted
    assert a.get("k") is NO_VALUE  # a fresh random generation: nothing of the old one
    generation = raw.get(counter)
    assert generation is not None
    assert generation.isdigit()
    assert b.get("k") is NO_VALUE
    a.set("k", b"again")
    assert b.get("k") == b"again"
    assert raw.delete(counter)
    b.clear()  # incr finds no counter: a new one is created
    assert a.get("k") is NO_VALUE


def test_a_corrupted_counter_is_reported(make: Factory, raw: Any, namespace: str) -> None:
    cache = make()
    raw.set(f"{namespace}:generation", b"not a number")
    with pytest.raises(CacheError, match="not a number"):
        cache.get("k")


# ------------------------------------------------------------------------ without clear
def test_without_clear_every_call_touches_only_its_own_keys(
    make: Factory, raw: Any, namespace: str
) -> None:
    cache = make("clear=none")
    assert cache.guarantees.clear is False
    assert cache.server_key("k") == f"{namespace}:-:k"
    cache.set("k", b"v", ttl=60)
    assert raw.get(f"{namespace}:-:k") == b"v"
    assert (cache.get("k"), cache.get("j")) == (b"v", NO_VALUE)
    assert (cache.add("k", b"w"), cache.add("j", b"w")) == (False, True)
    cache.set_many({"a": b"1", "": b""})
    assert cache.get_many(["a", "", "k", "missing"]) == {"a": b"1", "": b"", "k": b"v"}
    assert cache.compare_and_set("k", b"v", b"x")
    assert cache.get("k") == b"x"
    assert cache.compare_and_delete("k", b"x")
    assert cache.get("k") is NO_VALUE
    cache.delete_many(["a", "j"])
    cache.delete("")
    assert cache.get_many(["a", "j", ""]) == {}
    cache.set("kept", b"1")
    with pytest.raises(Unsupported, match="clear=none"):
        cache.clear()
    assert cache.get("kept") == b"1"  # the refused clear removed nothing
    assert raw.get(f"{namespace}:generation") is None  # no counter was ever created


def test_without_clear_is_a_subclass_that_clearable_false_builds(
    make: Factory, server: Server
) -> None:
    assert type(make()) is MemcachedBackend
    for plain in (make("clear=none"), make(clearable=False)):
        assert type(plain) is MemcachedBackendWithoutClear
        assert isinstance(plain, MemcachedBackend)
        assert plain.guarantees.clear is False
    # Refused before anything is sent: the class and the option must agree.
    with pytest.raises(ConfigurationError, match=r"without clear, not clearable=True"):
        MemcachedBackendWithoutClear("127.0.0.1", server.port)


def test_without_clear_the_key_layout_never_meets_the_generations(
    make: Factory, raw: Any, namespace: str
) -> None:
    plain, counted = make("clear=none"), make()
    longest = "p" * plain.plain_key_budget
    assert len(plain.server_key(longest)) == MAX_KEY_BYTES
    assert plain.server_key(longest + "p").startswith(f"{namespace}:-:{DIGEST_MARKER}")
    for key in ("k", "0:k", longest, "a b"):
        plain.set(key, b"plain")
        counted.set(key, b"counted")
        assert (plain.get(key), counted.get(key)) == (b"plain", b"counted")
    counted.clear()
    assert plain.get_many(["k", "0:k"]) == {"k": b"plain", "0:k": b"plain"}


def test_without_clear_each_call_is_one_command(make: Factory) -> None:
    cache = make("clear=none")
    cache._client = spy = Spy(cache._client)
    cache.set("k", b"v")
    cache.add("k", b"w")
    cache.get("k")
    cache.get_many(["k", "j"])
    prefix = cache.server_key("")
    assert spy.calls == [
        ("one_line", (f"set {prefix}k 0 0 1\r\nv\r\n".encode(),), {}),
        ("one_line", (f"add {prefix}k 0 0 1\r\nw\r\n".encode(),), {}),
        ("fetch", ([f"{prefix}k".encode()],), {}),
        ("fetch", ([f"{prefix}k".encode(), f"{prefix}j".encode()],), {}),
    ]


def test_without_clear_a_refused_write_is_an_error_and_a_refused_add_is_false(
    make: Factory,
) -> None:
    cache = make("clear=none")
    real = cache._client
    cache._client = Failing(real, refused=True)
    with pytest.raises(CacheError, match="did not store key 'k'"):
        cache.set("k", b"v")
    assert cache.add("k", b"v") is False
    cache._client = real
    assert cache.get("k") == b"v"  # only the reply was rewritten: the server stored it


@pytest.mark.parametrize(
    ("pieces", "error", "why"),
    [
        ((b"STORED\r\nSTORED\r\n",), CacheError, "more than one reply line"),
        ((b"STOR",), None, "closed mid-reply: a set is sent again"),
        ((b"CLIENT_ERROR bad data chunk\r\n",), CacheError, "bad data chunk"),
    ],
)
def test_without_clear_a_write_reply_out_of_shape_drops_its_connection(
    make: Factory, pieces: tuple[bytes, ...], error: type[Exception] | None, why: str
) -> None:
    cache = make("clear=none")
    cache.get("warm")  # one idle connection
    canned(cache, b"STO", b"RED\r\n")
    cache.set("k", b"v")  # a reply line in pieces is read to its end
    sock = canned(cache, *pieces)
    if error is None:  # on a new connection (backends/memcached/resend.py)
        cache.set("k", b"w")
        assert cache.get("k") == b"w", why
        assert [c for c in cache._client.idle if c.sock is sock] == []  # type: ignore[attr-defined]
    else:
        with pytest.raises(error, match=why):
            cache.set("k", b"w")
        assert cache._client.idle == ()  # type: ignore[attr-defined]
    cache.set("k", b"x")  # on a fresh connection
    assert cache.get("k") == b"x"


def test_the_suite_will_not_check_a_namespace_without_clear_on_a_users_server(
    server: Server,
) -> None:
    with pytest.raises(TargetError, match=r"declares clear=False.*throwaway server"):
        resolve_target(f"{server.url}?clear=none")
    resolve_target(server.url).close()  # with clear, the suite can clean up after itself


# ------------------------------------------------------------------------ arguments and URLs
@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.get(1), TypeError),
        (lambda c: c.get(b"k"), TypeError),
        (lambda c: c.get_many("abc"), TypeError),
        (lambda c: c.get_many(["a", 2]), TypeError),
        (lambda c: c.delete_many(b"ab"), TypeError),
        (lambda c: c.set_many([("k", b"v")]), TypeError),
        (lambda c: c.set_many({"k": b"v", "j": "text"}), TypeError),
        (lambda c: c.set("k", "v"), TypeError),
        (lambda c: c.set("k", b"v", ttl=0), ValueError),
        (lambda c: c.set("k", b"v", ttl=-1), ValueError),
        (lambda c: c.set("k", b"v", ttl=float("nan")), ValueError),
        (lambda c: c.set("k", b"v", ttl=float("inf")), ValueError),
        (lambda c: c.set_many({"k": b"v"}, ttl="10"), TypeError),
        (lambda c: c.add("k", b"v", ttl=True), TypeError),
    ],
)
def test_bad_arguments_raise_typed_errors_and_write_nothing(
    make: Factory, call: Callable[[MemcachedBackend], object], error: type[Exception]
) -> None:
    cache = make()
    spy = spy_on(cache)
    with pytest.raises(error):
        call(cache)
    assert spy.calls == []
    assert cache.get_many(["k", "j"]) == {}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("colour=red", r"unknown option\(s\) colour"),
        ("timeout=0", "timeout=0.0 must be greater than 0"),
        ("timeout=soon", "is not a number"),
        ("timeout=-1", "must be a finite number"),
        ("namespace_refresh=-1", "must be a finite number"),
        ("max_value_size=-1", "must be at least 0"),
        ("max_value_size=big", "not a whole number"),
        ("namespace=a:b", "namespace must match"),
        ("namespace=", "namespace must match"),
        ("namespace=" + "n" * 65, "namespace must match"),
        ("namespace=a&namespace=b", "given twice"),
        ("clear=never", "option clear='never' must be one of generation, none"),
        ("clear=none&namespace_refresh=1", "namespace_refresh needs the clear generation"),
    ],
)
def test_url_option_errors_name_the_url(query: str, message: str) -> None:
    url = f"memcached://127.0.0.1:1?{query}"
    with pytest.raises(ConfigurationError, match=message) as caught:
        memcached_from_url(BackendURL(url))
    assert "memcached://127.0.0.1:1" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memcached://127.0.0.1:1/db", "takes no path"),
        ("memcached://user:secret@127.0.0.1:1", "takes no user or password"),
        ("memcached://127.0.0.1:0", "port 0 is not a server's port"),
    ],
)
def test_url_shape_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        memcached_from_url(BackendURL(url))
    assert "secret" not in str(caught.value)


def test_the_namespace_keyword_overrides_the_url_and_the_clock_is_ignored(
    server: Server,
) -> None:
    url = BackendURL(f"{server.url}?namespace=fromurl&namespace_refresh=2")
    cache = memcached_from_url(url, namespace="fromkeyword", clock=lambda: 0.0)
    try:
        assert cache.namespace == "fromkeyword"
        assert cache.server_key("k").startswith("fromkeyword:")
        assert cache._refresh == 2
        assert cache.guarantees.ttl_resolution == TTL_RESOLUTION
        assert cache.guarantees.eviction == NoEviction()
    finally:
        cache.close()


def test_constructor_arguments_are_checked() -> None:
    for kwargs in (
        {"namespace": "has space"},
        {"timeout": 0},
        {"timeout": float("nan")},
        {"namespace_refresh": -0.5},
        {"namespace_refresh": True},
        {"max_value_size": -1},
        {"monotonic": 3},
        {"clearable": "no"},
        {"clearable": False, "namespace_refresh": 1.0},
    ):
        with pytest.raises(ConfigurationError):
            MemcachedBackend("127.0.0.1", 1, **kwargs)


@pytest.mark.parametrize("port", ["x", "11211", 0, -1, 65536, True, None, 1.5])
def test_a_bad_port_is_a_configuration_error_naming_it(port: object) -> None:
    # Refused before any connection: a port that cannot be is an option to fix, not a
    # server that is down (BackendUnavailable).
    expected = f"port must be an int from 1 to 65535, got {port!r}"
    with pytest.raises(ConfigurationError, match=re.escape(expected)):
        MemcachedBackend("127.0.0.1", port)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["", None, b"127.0.0.1", ("127.0.0.1", 11211)])
def test_a_bad_host_is_a_configuration_error_naming_it(host: object) -> None:
    with pytest.raises(ConfigurationError, match="host must be a non-empty str, got"):
        MemcachedBackend(host, 1)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- availability
def test_a_dead_port_is_backend_unavailable_naming_the_url() -> None:
    port = _free_port()  # nothing listens there once the probe socket is closed
    url = f"memcached://127.0.0.1:{port}?namespace=dead&timeout=2"
    with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}"):
        memcached_from_url(BackendURL(url))


def test_a_silent_server_is_backend_unavailable_after_the_timeout() -> None:
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        with pytest.raises(BackendUnavailable, match=r"TimeoutError|timed out"):
            memcached_from_url(BackendURL(f"memcached://127.0.0.1:{port}?timeout=0.2"))


def test_a_server_that_goes_away_is_backend_unavailable() -> None:
    doomed = start_server()
    cache = memcached_from_url(BackendURL(f"{doomed.url}?namespace=doomed&timeout=2"))
    try:
        cache.set("k", b"v")
        stop_server(doomed)
        for call in (
            lambda: cache.get("k"),
            lambda: cache.set("k", b"v"),
            lambda: cache.get_many(["k"]),
            cache.clear,
        ):
            with pytest.raises(BackendUnavailable, match=re.escape(doomed.url)):
                call()
    finally:
        cache.close()
        stop_server(doomed)


def test_a_closed_backend_refuses_calls(make: Factory) -> None:
    cache = make()
    cache.close()
    cache.close()
    with pytest.raises(BackendUnavailable, match="closed"):
        cache.get("k")


def test_pymemcache_is_imported_only_when_a_backend_is_built() -> None:
    code = (
        "import sys, cachespec.backends.memcached as m, cachespec.backends as b; "
        "print('pymemcache' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# ------------------------------------------------------------------ under the harness's clock
@pytest.mark.parametrize("ttl", [0.25, 1, 1.5, 10, RELATIVE_EXPTIME_LIMIT + 1, FORTY_DAYS])
@pytest.mark.parametrize("offset", [0.0, 0.5, 0.999])
def test_on_a_fake_server_clock_no_entry_ends_early_or_late(ttl: float, offset: float) -> None:
    """Alive just before written_at + ttl, gone by written_at + ttl + TTL_RESOLUTION.

    The server runs under the harness's fake clock (conformance/servers/), whose date is
    not this machine's: a 40-day TTL is right only if the absolute time comes from the server.
    """
    from cachespec.conformance import servers  # noqa: PLC0415 - the harness is optional here

    reason = servers.harness_available("memcached")
    if reason is not None:
        if os.environ.get("CACHESPEC_ALLOW_NO_SERVERS") == "1":
            pytest.skip(reason)
        pytest.fail(f"{reason} (set CACHESPEC_ALLOW_NO_SERVERS=1 to skip)")
    with servers.start_memcached() as fake:
        clock = fake.clock
        assert clock is not None
        cache = MemcachedBackend(fake.host, fake.port, namespace="fake", timeout=5)
        try:
            clock.advance_to(servers.START_TIME + offset)
            written_at = clock.now()
            cache.set("k", b"v", ttl=ttl)
            clock.advance_to(written_at + ttl - 0.001)
            assert cache.get("k") == b"v"
            clock.advance_to(written_at + ttl + TTL_RESOLUTION)
            assert cache.get("k") is NO_VALUE
        finally:
            cache.close()


def test_a_guests_counter_expires_and_an_applications_never_does(
    make: Factory, raw: Any, namespace: str
) -> None:
    """The suite's namespaces on a server you run are guests: a run killed before discard
    must leave nothing that lives forever, the generation counter included."""
    app = make(ns=f"{namespace}app")
    assert remaining_ttl(raw, app._counter_key) == -1  # an application's: never expires
    guest = make()
    guest.expire_bookkeeping(3600)
    assert 3590 <= remaining_ttl(raw, guest._counter_key) <= 3600  # the one there now
    raw.delete(guest._counter_key)  # as memcached would evict it
    guest.clear()  # creates it again: with the guest's expiry
    assert 3590 <= remaining_ttl(raw, guest._counter_key) <= 3600
    for bad in (0, -1, float("nan"), True, 2_592_001):
        with pytest.raises(ConfigurationError):
            guest.expire_bookkeeping(bad)
    make("clear=none").expire_bookkeeping(3600)  # no counter: nothing to expire


def test_the_suite_on_a_server_you_run_gives_its_counters_an_expiry(
    server: Server, raw: Any
) -> None:
    target = resolve_target(server.url)  # a URL: a server the user runs, the suite a guest
    try:
        session = target.open_session()
        backend = session.backend("main")
        backend.set("k", b"v")
        counter = backend._inner._counter_key  # type: ignore[attr-defined]
        assert counter.startswith("cachespec-check-")
        assert 0 < remaining_ttl(raw, counter) <= 3600
        session.close()
    finally:
        target.close()
