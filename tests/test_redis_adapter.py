"""The Redis adapter against a throwaway ``redis-server``, and against fakeredis on a clock.

The server fixture below is a stopgap, kept small and self-contained so that the conformance
harness's server manager can replace it: a free loopback port, no persistence, a bounded wait
for PING, SIGTERM at the end. Without ``redis-server`` these tests fail, unless
``CACHESPEC_ALLOW_NO_SERVERS=1`` (then they skip and say why).

No test sleeps: time-dependent behaviour is checked on fakeredis, whose clock the test owns;
on the real server only what needs no time travel (the rest is the conformance suite's job,
under the harness's fake clock).
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.connection

from cachespec.backends import (
    NO_VALUE,
    BackendFull,
    BackendUnavailable,
    BackendURL,
    CacheError,
    ConfigurationError,
    ValueTooLarge,
    open_backend,
)
from cachespec.backends.cache import Cache
from cachespec.backends.redis import (
    FAKEREDIS_TTL_RESOLUTION,
    MAX_TTL,
    REDIS_SERVER_EVICTION,
    REDIS_TTL_RESOLUTION,
    RedisBackend,
    fakeredis_client,
    fakeredis_from_url,
    redis_from_url,
)
from cachespec.backends.redis.layout import glob_escape, namespace_base
from cachespec.backends.redis.ttl import milliseconds
from cachespec.conformance import servers
from cachespec.conformance.clock import ManualClock
from cachespec.spec import SERVER_EVICTION, ExactLRU, NoEviction

pytestmark = pytest.mark.redis

ALLOW_NO_SERVERS = os.environ.get("CACHESPEC_ALLOW_NO_SERVERS") == "1"
START_TIMEOUT = 10.0  # seconds for a fresh redis-server to answer PING
STOP_TIMEOUT = 10.0


# ------------------------------------------------------------------------ the server
def free_port() -> int:
    """A loopback port nobody listens on (just now: bind port 0 and read it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RedisServer:
    port: int
    unix_socket: Path
    process: subprocess.Popen[bytes]
    reaper: servers.Reaper  # stops it if pytest is killed (docs/design.md)

    def url(self, query: str = "", *, db: int = 0, auth: str = "") -> str:
        return f"redis://{auth}127.0.0.1:{self.port}/{db}{'?' + query if query else ''}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        self.reaper.dismiss()


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed"
        if ALLOW_NO_SERVERS:
            pytest.skip(f"{reason} (CACHESPEC_ALLOW_NO_SERVERS=1)")
        pytest.fail(f"{reason}; install it, or set CACHESPEC_ALLOW_NO_SERVERS=1 to skip", False)
    return binary


def start_redis(directory: Path) -> RedisServer:
    """Start a redis-server with no persistence; return once it answers PING."""
    binary = redis_server_binary()
    for _attempt in range(3):  # the free port can be taken between bind and start
        port = free_port()
        unix_socket = directory / f"redis-{port}.sock"
        process = subprocess.Popen(
            [
                *(binary, "--save", "", "--appendonly", "no", "--port", str(port)),
                *("--bind", "127.0.0.1", "--unixsocket", str(unix_socket)),
                *("--unixsocketperm", "700"),
            ],
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        server = RedisServer(port, unix_socket, process, servers.Reaper(process.pid))
        probe = redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while process.poll() is None and time.monotonic() < deadline:
                try:
                    if probe.ping():
                        return server
                except redis.ConnectionError:
                    time.sleep(0.01)  # polling a starting process, not waiting on a cache
        finally:
            probe.close()
        server.stop()
    output = process.stdout.read().decode(errors="replace") if process.stdout else ""
    pytest.fail(f"redis-server did not answer PING within {START_TIMEOUT} s:\n{output}", False)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client on the test server; the database starts empty for each test."""
    client = redis.Redis(port=redis_server.port)
    client.flushall()
    yield client
    client.close()


# ----------------------------------------------------------------- backends of each kind
@dataclass
class Kind:
    """How to open a namespace, and a raw client on the same (real or fake) server."""

    name: str
    open: Callable[..., RedisBackend]
    raw: redis.Redis
    clock: ManualClock | None


@pytest.fixture(params=["redis", pytest.param("fakeredis", marks=pytest.mark.fakeredis)])
def kind(request: pytest.FixtureRequest) -> Iterator[Kind]:
    opened: list[RedisBackend] = []
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        raw_client: redis.Redis = request.getfixturevalue("raw")

        def open_real(query: str = "") -> RedisBackend:
            backend = redis_from_url(BackendURL(server.url(query)))
            opened.append(backend)
            return backend

        yield Kind("redis", open_real, raw_client, None)
    else:
        clock = ManualClock()
        fake_raw = fakeredis_client(clock)

        def open_fake(query: str = "") -> RedisBackend:
            backend = fakeredis_from_url(BackendURL(f"fakeredis://?{query}"), clock=clock)
            opened.append(backend)
            return backend

        yield Kind("fakeredis", open_fake, fake_raw, clock)
    for backend in opened:
        backend.close()


@contextmanager
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Count the requests every redis-py connection sends (a pipeline is one send)."""
    sent = [0]
    original: Callable[..., None] = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        original(self, command, check_health)

    with monkeypatch.context() as patch:
        patch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
        yield sent


def data_keys(backend: RedisBackend, raw_client: redis.Redis) -> set[bytes]:
    """The entries' Redis keys in ``backend``'s namespace, read around the adapter."""
    prefix = backend.key_prefix
    return {name for name in raw_client.scan_iter(match=glob_escape(prefix) + b"*")}


# ------------------------------------------------------------------------ round trips
def test_every_operation_round_trips(kind: Kind) -> None:
    backend = kind.open("namespace=ops")
    assert backend.get("missing") is NO_VALUE
    for value in (b"", b"\x00", b"0", b"False", b"\xff" * 3, b"x" * 100_000):
        backend.set("k", value)
        assert backend.get("k") == value
        assert backend.get_many(["k", "missing"]) == {"k": value}
    backend.set_many({"a": b"", "b": b"2", "c": b"3"})
    assert backend.get_many(["a", "b", "c", "nope", "a"]) == {"a": b"", "b": b"2", "c": b"3"}
    assert backend.get_many([]) == {}
    backend.delete("a")
    backend.delete("a")  # idempotent
    assert backend.get("a") is NO_VALUE
    backend.delete_many(["b", "nope"])
    backend.delete_many([])
    assert backend.get_many(["b", "c"]) == {"c": b"3"}
    assert backend.add("c", b"new") is False
    assert backend.get("c") == b"3"
    assert backend.add("d", b"") is True
    assert backend.get("d") == b""
    assert backend.add("e", b"5", ttl=100) is True
    backend.set_many({}, ttl=5)
    backend.clear()
    assert backend.get_many(["c", "d", "e", "k"]) == {}


def test_set_without_ttl_drops_the_old_ttl(kind: Kind) -> None:
    backend = kind.open("namespace=ttl")
    name = backend.key_prefix + b"k"
    backend.set("k", b"1", ttl=100)
    assert 0 < kind.raw.pttl(name) <= 100_000
    backend.set("k", b"2")  # plain SET drops the TTL (docs/facts.md)
    assert kind.raw.pttl(name) == -1
    backend.set_many({"k": b"3"}, ttl=100)
    assert 0 < kind.raw.pttl(name) <= 100_000
    backend.set_many({"k": b"4"})  # MSET drops it too
    assert kind.raw.pttl(name) == -1


KEYS = [
    "",
    " ",
    "a b",
    "line\nbreak\r\t",
    "\x00",
    "\ud800",  # a lone surrogate
    "\ud83d\ude00",  # a surrogate pair spelled as two code points ...
    "\U0001f600",  # ... is not the astral character it would make
    "caf\u00e9",
    "cafe\u0301",
    "x" * 10_000,
    "{a}:b",
    "*",
    "a[b",
    "\\",
    "}",
]


def test_any_str_key_round_trips_to_its_own_entry(kind: Kind) -> None:
    backend = kind.open("namespace=keys")
    backend.set_many({key: str(i).encode() for i, key in enumerate(KEYS)})
    assert backend.get_many(KEYS) == {key: str(i).encode() for i, key in enumerate(KEYS)}
    for i, key in enumerate(KEYS):
        assert backend.get(key) == str(i).encode()
    assert len(data_keys(backend, kind.raw)) == len(KEYS)
    backend.delete_many(KEYS[::2])
    assert set(backend.get_many(KEYS)) == set(KEYS[1::2])


# ------------------------------------------------------------------------- namespaces
def test_namespace_prefixes_cannot_be_confused() -> None:
    # "a" + "b:c" and "a:b" + "c" would both be "a:b:c" with a plain "ns:" prefix.
    assert namespace_base("a") + b":b:c" != namespace_base("a:b") + b":c"
    bases = [namespace_base(ns) for ns in ("a", "a}", "a}b", "a\\", "a\\}", "{a", "a:b", "ab")]
    for base in bases:
        for other in bases:
            assert base == other or not (base + b":").startswith(other + b":")
    assert namespace_base("a}b") == b"{a\\}b}"
    assert glob_escape(b"{a*b?[c]\\}") == b"{a\\*b\\?\\[c\\]\\\\}"


NAMESPACES = ["a", "a:b", "a*b", "a[b", "a?", "a\\b", "a}b", "ab", "{a}", "\u00e9"]


@pytest.mark.parametrize("doomed", NAMESPACES)
def test_clear_touches_only_its_own_namespace(kind: Kind, doomed: str) -> None:
    backends = {ns: kind.open(f"namespace={_quote(ns)}") for ns in NAMESPACES}
    for ns, backend in backends.items():
        assert backend.namespace == ns
        backend.set_many({"k": ns.encode(), "b:c": b"1", "*": b"2"})
    # Keys of no namespace (no "{...}" base, or an unterminated one) are never touched.
    foreign = [b"other", b"a:k", b"{a", b"{ab:k", b"{a\\}:k", b"cachespec:k", b"k"]
    for name in foreign:
        kind.raw.set(name, b"theirs")
    backends[doomed].clear()
    assert backends[doomed].get_many(["k", "b:c", "*"]) == {}
    for ns, backend in backends.items():
        if ns != doomed:
            assert backend.get_many(["k", "b:c", "*"]) == {"k": ns.encode(), "b:c": b"1", "*": b"2"}
    assert kind.raw.mget(foreign) == [b"theirs"] * len(foreign)


def _quote(text: str) -> str:
    from urllib.parse import quote  # noqa: PLC0415

    return quote(text, safe="")


def test_clear_sweeps_many_pages(kind: Kind) -> None:
    backend = kind.open("namespace=big")
    other = kind.open("namespace=bi")
    backend.set_many({f"k{i}": b"v" for i in range(2500)})
    other.set("k1", b"kept")
    backend.clear()
    assert data_keys(backend, kind.raw) == set()
    assert other.get("k1") == b"kept"


# ------------------------------------------------------------------------------- TTLs
@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.001, 1),
        (0.0011, 2),
        (0.0019999, 2),
        (1e-9, 1),
        (5e-324, 1),
        (1.5, 1500),
        (0.1 + 0.2, 301),  # 0.30000000000000004 s: 300 ms would be short
        (86400, 86_400_000),
        (MAX_TTL, MAX_TTL * 1000),
    ],
)
def test_ttls_round_up_to_whole_milliseconds(seconds: float, expected: int) -> None:
    ms = milliseconds(seconds)
    assert ms == expected
    assert ms / 1000 >= seconds  # never short, in the floats the model adds times in
    assert Fraction(ms, 1000) - Fraction(seconds) < Fraction(1, 1000)  # exactly: under 1 ms late


def test_ttl_is_sent_as_px_rounded_up() -> None:
    # On the harness's frozen clock: no time passes between the write and the PTTL that
    # reads it back (in real time a loaded machine let a millisecond pass, and the read
    # showed 99,999).
    with servers.start_redis() as server:
        backend = redis_from_url(BackendURL(f"{server.url}?namespace=px"))
        raw = redis.Redis(host=server.host, port=server.port, socket_timeout=2)
        sent: list[tuple[Any, ...]] = []
        execute = backend._execute

        def spy(*args: Any) -> Any:
            sent.append(args)
            return execute(*args)

        backend._execute = spy
        backend.set("k", b"v", ttl=100.0001)
        assert sent[-1][-2:] == ("PX", 100_001)
        # Never shorter than asked: the server holds all 100,001 ms, not a truncated 100,000.
        assert raw.pttl(backend.key_prefix + b"k") == 100_001
        backend.add("n", b"v", ttl=0.0011)
        assert sent[-1][-3:] == ("NX", "PX", 2)
        backend.close()
        raw.close()


def test_fakeredis_ttl_is_exact_on_its_clock() -> None:
    clock = ManualClock(1000.0)
    backend = fakeredis_from_url(BackendURL("fakeredis://?namespace=exact"), clock=clock)
    raw_client = fakeredis_client(clock)
    backend.set("k", b"v", ttl=0.0011)  # sent as PX 2
    assert raw_client.pttl(backend.key_prefix + b"k") == 2
    backend.set("one", b"v", ttl=1)
    clock.advance_to(math.nextafter(1001.0, 0))
    assert backend.get("one") == b"v"
    clock.advance_to(1001.0)  # the expiry instant: still served (PTTL 0), like Redis
    assert raw_client.pttl(backend.key_prefix + b"one") == 0
    assert backend.get("one") == b"v"
    clock.advance_to(math.nextafter(1001.0, math.inf))
    assert backend.get("one") is NO_VALUE
    assert backend.get("k") is NO_VALUE
    # At most FAKEREDIS_TTL_RESOLUTION late: written at 1001.0 with 1.5005 s -> PX 1501.
    backend.set("late", b"v", ttl=1.5005)
    clock.advance_to(1001.0 + 1.501)
    assert backend.get("late") == b"v"
    clock.advance_to(math.nextafter(1001.0 + 1.5005 + FAKEREDIS_TTL_RESOLUTION, math.inf))
    assert backend.get("late") is NO_VALUE


def test_fakeredis_time_follows_the_clock_of_its_own_server() -> None:
    first, second = ManualClock(1000.25), ManualClock(5000.0)
    a = fakeredis_client(first)
    b = fakeredis_client(second)
    assert a.time() == (1000, 250_000)
    assert b.time() == (5000, 0)
    assert a.eval("return redis.call('TIME')", 0) == [b"1000", b"250000"]
    a.set("k", b"v", px=1000)
    b.set("k", b"v", px=1000)
    first.advance(2)
    assert a.get("k") is None
    assert b.get("k") == b"v"  # the other server's clock did not move
    assert fakeredis_client(first).get("k") is None  # same clock object: same server
    real = fakeredis_client(None)
    seconds, micros = real.time()
    assert abs(seconds + micros / 1e6 - time.time()) < 60  # no clock: real time


def test_fakeredis_two_namespaces_on_one_clock_share_a_server() -> None:
    clock = ManualClock()
    one = fakeredis_from_url(BackendURL("fakeredis://?namespace=one"), clock=clock)
    two = fakeredis_from_url(BackendURL("fakeredis://"), clock=clock, namespace="two")
    one.set("k", b"1")
    two.set("k", b"2")
    one.clear()
    assert (one.get("k"), two.get("k")) == (NO_VALUE, b"2")
    assert fakeredis_client(clock).exists(two.key_prefix + b"k") == 1


# ------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("query", ["namespace=rt", "namespace=rt&capacity=100"])
def test_batches_are_one_round_trip(
    kind: Kind, query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = kind.open(query)
    keys = [f"k{i}" for i in range(50)]
    backend.set_many(dict.fromkeys(keys, b"v"))  # loads nothing: scripts were loaded at start
    with round_trips(monkeypatch) as sent:
        backend.set_many(dict.fromkeys(keys, b"w"))
        backend.set_many(dict.fromkeys(keys, b"x"), ttl=60)
        assert backend.get_many(keys) == dict.fromkeys(keys, b"x")
        backend.delete_many(keys)
        assert backend.get("k1") is NO_VALUE
        backend.set("k", b"v")
        assert backend.add("k", b"v") is False
        backend.delete("k")
    assert sent[0] == 8


def test_server_sees_one_command_per_batch(redis_server: RedisServer, raw: redis.Redis) -> None:
    backend = redis_from_url(BackendURL(redis_server.url("namespace=stats")))
    keys = [f"k{i}" for i in range(100)]
    raw.config_resetstat()
    backend.set_many(dict.fromkeys(keys, b"v"))
    backend.set_many(dict.fromkeys(keys, b"v"), ttl=5)
    assert backend.get_many(keys) == dict.fromkeys(keys, b"v")
    backend.delete_many(keys)
    stats = raw.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): entry["calls"] for name, entry in stats.items()}
    assert calls.get("mset") == 1
    assert calls.get("mget") == 1
    assert calls.get("unlink") == 1
    assert (calls.get("multi"), calls.get("exec"), calls.get("set")) == (1, 1, 100)
    assert "get" not in calls
    backend.close()


# ------------------------------------------------------------------ refused arguments
BAD_TTLS: list[tuple[Any, type[Exception]]] = [
    (0, ValueError),
    (-1, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    (MAX_TTL * 1.5, ValueError),
    (True, TypeError),
    ("10", TypeError),
]


@pytest.mark.parametrize("query", ["namespace=bad&max_value_size=10", "namespace=bad&capacity=5"])
def test_refused_arguments_write_nothing(
    kind: Kind, query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = kind.open(query)
    backend.set("k", b"old")
    before = sorted(kind.raw.scan_iter())
    limit = backend.guarantees.max_value_size
    calls: list[Callable[[], object]] = [
        lambda: backend.get(1),  # type: ignore[arg-type]
        lambda: backend.get(b"k"),  # type: ignore[arg-type]
        lambda: backend.set(None, b"v"),  # type: ignore[arg-type]
        lambda: backend.set("k", "str"),  # type: ignore[arg-type]
        lambda: backend.set("k", bytearray(b"v")),  # type: ignore[arg-type]
        lambda: backend.add("k", 1),  # type: ignore[arg-type]
        lambda: backend.get_many("ab"),
        lambda: backend.get_many(["a", 2]),  # type: ignore[list-item]
        lambda: backend.set_many({"a": b"1", "b": "2"}),  # type: ignore[dict-item]
        lambda: backend.set_many([("a", b"1")]),  # type: ignore[arg-type]
        lambda: backend.delete(3),  # type: ignore[arg-type]
        lambda: backend.delete_many(["a", None]),  # type: ignore[list-item]
        lambda: backend.compare_and_set(4, b"old", b"v"),  # type: ignore[arg-type]
        lambda: backend.compare_and_set("k", "old", b"v"),  # type: ignore[arg-type]
        lambda: backend.compare_and_set("k", None, b"v"),  # type: ignore[arg-type]
        lambda: backend.compare_and_set("k", bytearray(b"old"), b"v"),  # type: ignore[arg-type]
        lambda: backend.compare_and_set("k", b"old", "v"),  # type: ignore[arg-type]
        lambda: backend.compare_and_set("k", b"old", memoryview(b"v")),  # type: ignore[arg-type]
        lambda: backend.compare_and_delete(b"k", b"old"),  # type: ignore[arg-type]
        lambda: backend.compare_and_delete("k", "old"),  # type: ignore[arg-type]
        lambda: backend.compare_and_delete("k", bytearray(b"old")),  # type: ignore[arg-type]
    ]
    with round_trips(monkeypatch) as sent:
        for call in calls:
            with pytest.raises(TypeError):
                call()
        for ttl, error in BAD_TTLS:
            for write in (
                lambda: backend.set("k", b"new", ttl),  # noqa: B023
                lambda: backend.add("n", b"new", ttl),  # noqa: B023
                lambda: backend.set_many({"k": b"new", "n": b"new"}, ttl),  # noqa: B023
                lambda: backend.compare_and_set("k", b"old", b"new", ttl),  # noqa: B023
            ):
                with pytest.raises(error):
                    write()
        if limit is not None:
            with pytest.raises(ValueTooLarge):
                backend.set("k", b"x" * (limit + 1))
            with pytest.raises(ValueTooLarge):
                backend.set_many({"n": b"small", "k": b"x" * (limit + 1)})
            with pytest.raises(ValueTooLarge):
                backend.compare_and_set("k", b"old", b"x" * (limit + 1))
    assert sent[0] == 0
    assert sorted(kind.raw.scan_iter()) == before
    assert backend.get("k") == b"old"
    if limit is not None:
        # An expected value over the limit is never stored: it just cannot match.
        assert backend.compare_and_set("k", b"x" * (limit + 1), b"new") is False
        assert backend.compare_and_set("k", b"old", b"x" * limit) is True  # at the limit
        assert backend.get("k") == b"x" * limit


# ------------------------------------------------------------------------ the guarantees
def test_declared_guarantees(redis_server: RedisServer, raw: redis.Redis) -> None:
    plain = redis_from_url(BackendURL(redis_server.url("max_value_size=1000")))
    assert plain.guarantees.ttl_resolution == REDIS_TTL_RESOLUTION == 0.002
    assert plain.guarantees.eviction == NoEviction()
    assert plain.guarantees.max_value_size == 1000
    assert plain.guarantees.max_ttl == MAX_TTL
    assert plain.guarantees.thread_safe
    assert plain.guarantees.compare_and_set
    bounded = redis_from_url(BackendURL(redis_server.url("capacity=7")))
    assert bounded.guarantees.eviction == ExactLRU(7)
    fake = fakeredis_from_url(BackendURL("fakeredis://?capacity=3"), clock=ManualClock())
    assert fake.guarantees.ttl_resolution == FAKEREDIS_TTL_RESOLUTION == 0.001
    assert fake.guarantees.eviction == ExactLRU(3)
    assert bounded.guarantees.compare_and_set
    assert fake.guarantees.compare_and_set
    evicting = redis_from_url(BackendURL(redis_server.url("eviction=server")))
    assert evicting.guarantees.eviction == REDIS_SERVER_EVICTION
    assert replace(SERVER_EVICTION, refuses_when_full=True) == REDIS_SERVER_EVICTION
    for backend in (plain, bounded, fake, evicting):
        backend.close()


def test_a_write_refused_for_want_of_memory_is_backend_full_and_leaves_no_old_value() -> None:
    with servers.start_redis(fake_time=False, maxmemory_policy="noeviction") as server:
        cache = open_backend(f"{server.url}?eviction=server", namespace="full")
        cache.set_many({"k": b"old", "j": b"old", "m": b"old"})
        bounded = open_backend(f"{server.url}?capacity=4", namespace="bounded")
        bounded.set("k", b"old")
        # A limit far below what the server uses: every write is refused (OOM), and Redis
        # keeps the old values, while deletes, which free memory, still run.
        admin = redis.Redis(host=server.host, port=server.port)
        admin.config_set("maxmemory", "1")
        with pytest.raises(BackendFull, match="old values were deleted") as caught:
            cache.set("k", b"new", ttl=60)
        assert caught.value.keys == ("k",)
        with pytest.raises(BackendFull):
            cache.set_many({"j": b"new", "gone": b"new"})  # MSET
        with pytest.raises(BackendFull):
            cache.set_many({"m": b"new"}, ttl=60)  # MULTI/EXEC, aborted whole
        assert cache.get_many(["k", "j", "m", "gone"]) == {}  # new or nothing: nothing
        with pytest.raises(BackendFull, match="nothing was written") as caught:
            cache.add("free", b"v")
        assert caught.value.keys == ("free",)
        # A bounded namespace's scripts are refused whole, reads included (a hit is a
        # write there): an error reply, typed as a CacheError, and nothing deleted behind the
        # LRU, so not BackendFull (which promises the old values are gone).
        with pytest.raises(CacheError, match="maxmemory") as refused:
            bounded.set("k", b"new")
        assert not isinstance(refused.value, BackendFull)
        admin.config_set("maxmemory", "0")
        assert bounded.get("k") == b"old"
        assert cache.get("free") is NO_VALUE
        assert cache.add("free", b"v")  # room again: writes work
        cache.close()
        bounded.close()
        admin.close()


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("eviction=lru", r"option eviction='lru' must be one of none, server"),
        ("eviction=server&capacity=8", r"a namespace with a capacity needs a server that does"),
    ],
)
def test_a_wrong_eviction_option_is_refused(
    redis_server: RedisServer, raw: redis.Redis, query: str, why: str
) -> None:
    with pytest.raises(ConfigurationError, match=why):
        redis_from_url(BackendURL(redis_server.url(query)))
    assert raw.dbsize() == 0


@pytest.mark.fakeredis
def test_fakeredis_takes_no_eviction_option() -> None:
    # fakeredis never evicts: declaring that it does would only weaken its checks.
    with pytest.raises(ConfigurationError, match="unknown option"):
        fakeredis_from_url(BackendURL("fakeredis://?eviction=server"), clock=ManualClock())


def test_add_is_atomic_across_threads(kind: Kind) -> None:
    for query in ("namespace=race", "namespace=race-lru&capacity=50"):
        backend = kind.open(query)
        for round_ in range(10):
            results: list[bool] = []
            barrier = threading.Barrier(8)

            def contender(
                round_: int = round_,
                barrier: threading.Barrier = barrier,
                results: list[bool] = results,
            ) -> None:
                barrier.wait()
                results.append(backend.add(f"lock{round_}", b"me", ttl=30))  # noqa: B023

            threads = [threading.Thread(target=contender) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(results) == [False] * 7 + [True]


# ---------------------------------------------------------------------- exact LRU
def survivors(backend: RedisBackend, keys: str) -> str:
    return "".join(sorted(backend.get_many(list(keys))))


def test_lru_a_hit_refreshes(kind: Kind) -> None:
    backend = kind.open("namespace=lru&capacity=3")
    backend.set_many({"a": b"1", "b": b"2", "c": b"3"})
    assert backend.get("a") == b"1"
    backend.set("d", b"4")
    assert survivors(backend, "abcd") == "acd"


def test_lru_get_many_uses_in_request_order(kind: Kind) -> None:
    backend = kind.open("namespace=lru&capacity=3")
    backend.set_many({"a": b"1", "b": b"2", "c": b"3"})
    assert backend.get_many(["b", "missing", "a"]) == {"b": b"2", "a": b"1"}  # order c, b, a
    backend.set("d", b"4")  # evicts c
    backend.set("e", b"5")  # evicts b
    assert kind.raw.exists(backend.key_prefix + b"a") == 1  # read around the adapter
    assert survivors(backend, "abcde") == "ade"


def test_lru_a_failed_add_is_not_a_use(kind: Kind) -> None:
    backend = kind.open("namespace=lru&capacity=2")
    backend.set("a", b"1")
    backend.set("b", b"2")
    assert backend.add("a", b"other") is False
    backend.set("c", b"3")  # a is still the least recently used
    assert survivors(backend, "abc") == "bc"
    assert backend.add("d", b"4") is True  # a successful add inserts and evicts: b
    assert survivors(backend, "abcd") == "cd"


def test_lru_overwrite_delete_clear_and_batches(kind: Kind) -> None:
    backend = kind.open("namespace=lru&capacity=2")
    backend.set("a", b"1")
    backend.set("b", b"2")
    backend.set("a", b"again")  # an overwrite takes no new place: nothing evicted
    assert survivors(backend, "ab") == "ab"
    backend.delete("a")  # frees a place
    backend.set("c", b"3")
    assert survivors(backend, "abc") == "bc"
    assert backend.get("zzz") is NO_VALUE  # a miss takes no place
    backend.set_many({"d": b"4", "e": b"5", "f": b"6"})  # in order: b, c, d go
    assert survivors(backend, "abcdef") == "ef"
    backend.delete_many(["e", "nope"])
    backend.set("g", b"7")
    assert survivors(backend, "efg") == "fg"
    backend.clear()
    assert kind.raw.keys(glob_escape(b"{lru}") + b"*") == []  # entries and bookkeeping
    backend.set_many({"x": b"1", "y": b"2"})
    assert survivors(backend, "xy") == "xy"


def test_lru_never_holds_more_than_its_capacity(kind: Kind) -> None:
    backend = kind.open("namespace=lru&capacity=5")
    for i in range(40):
        backend.set(f"k{i}", b"v", ttl=None if i % 3 else 60)
        if i % 4 == 0:
            backend.get(f"k{i // 2}")
        assert len(data_keys(backend, kind.raw)) <= 5
    assert kind.raw.zcard(b"{lru}#lru") == len(data_keys(backend, kind.raw)) == 5


def test_lru_namespaces_have_their_own_capacity(kind: Kind) -> None:
    one = kind.open("namespace=one&capacity=2")
    two = kind.open("namespace=two&capacity=2")
    one.set_many({"a": b"1", "b": b"2"})
    two.set_many({"a": b"1", "b": b"2", "c": b"3"})
    assert survivors(one, "abc") == "ab"
    assert survivors(two, "abc") == "bc"


def test_lru_expired_entries_make_room_first_on_redis(
    redis_server: RedisServer, raw: redis.Redis
) -> None:
    """Without time travel: expire ``a`` on the server and in the index, as its TTL would."""
    backend = redis_from_url(BackendURL(redis_server.url("namespace=exp&capacity=2")))
    backend.set("a", b"1", ttl=100)
    backend.set("b", b"2")
    backend.get("a")  # a is the most recently used, b the least
    raw.pexpireat(b"{exp}:a", 1)  # an expiry in the past: the server drops a at once
    raw.zadd(b"{exp}#ttl", {b"{exp}:a": 1})
    backend.set("c", b"3")
    assert survivors(backend, "abc") == "bc"  # the expired a made room, not the live b
    assert raw.zcard(b"{exp}#lru") == 2
    # The index is only a hint: an entry it lists as due but that the server still has is
    # live, and keeps its place.
    backend.set("d", b"4", ttl=100)  # evicts b (c is more recent)
    raw.zadd(b"{exp}#ttl", {b"{exp}:d": 1})
    backend.get("c")  # d is now the least recently used
    backend.set("e", b"5")
    assert survivors(backend, "bcde") == "ce"
    backend.close()


def test_lru_expired_entries_make_room_first_on_fakeredis_clock() -> None:
    clock = ManualClock(1000.0)
    backend = fakeredis_from_url(BackendURL("fakeredis://?namespace=exp&capacity=2"), clock=clock)
    backend.set("a", b"1", ttl=1)
    backend.set("b", b"2")
    backend.get("a")  # a is the most recently used
    clock.advance_to(1001.0)  # the expiry instant: a is still served, so it is live
    backend.set("c", b"3")
    assert survivors(backend, "abc") == "ac"  # the least recently used live one, b, went
    clock.advance_to(1001.0 + FAKEREDIS_TTL_RESOLUTION)
    backend.set("d", b"4")
    assert survivors(backend, "acd") == "cd"  # expired a made room; c (older use) stays
    # Expired entries go first, all of them, before any live one.
    backend.clear()
    backend2 = fakeredis_from_url(BackendURL("fakeredis://?namespace=exp3&capacity=3"), clock=clock)
    backend2.set("x", b"1", ttl=0.5)
    backend2.set("y", b"2", ttl=0.25)
    backend2.set("z", b"3")
    clock.advance(0.6)
    backend2.set_many({"p": b"1", "q": b"2"})
    assert survivors(backend2, "xyzpq") == "pqz"
    # A read of an expired entry forgets it: it takes no place afterwards.
    backend2.set("t", b"4", ttl=0.1)  # evicts z
    clock.advance(1)
    assert backend2.get("t") is NO_VALUE
    assert fakeredis_client(clock).zcard(b"{exp3}#lru") == 2


# ---------------------------------------------------------------------- compare and set
PLAIN_AND_BOUNDED = ["namespace=cas", "namespace=cas&capacity=4"]


@pytest.mark.parametrize("query", PLAIN_AND_BOUNDED)
def test_compare_and_set_replaces_only_a_matching_value(kind: Kind, query: str) -> None:
    backend = kind.open(query)
    assert backend.guarantees.compare_and_set
    # A missing key never matches, whatever is expected (the empty value included).
    for expected in (b"", b"v", b"\x00"):
        assert backend.compare_and_set("k", expected, b"new") is False
    assert backend.get("k") is NO_VALUE
    assert data_keys(backend, kind.raw) == set()
    backend.set("k", b"v\x00\xff")
    # Byte for byte: no prefix, extension, case or encoding trick matches.
    for expected in (b"v", b"v\x00", b"v\x00\xff\x00", b"V\x00\xff", b"", "v\x00\xff".encode()):
        assert backend.compare_and_set("k", expected, b"wrong") is False
        assert backend.get("k") == b"v\x00\xff"
    replaced = backend.compare_and_set("k", b"v\x00\xff", b"w")
    assert replaced is True
    assert backend.get("k") == b"w"
    assert backend.compare_and_set("k", b"v\x00\xff", b"again") is False  # the old value is gone
    assert backend.compare_and_set("k", b"w", b"") is True  # to and from the empty value
    assert backend.get("k") == b""
    assert backend.compare_and_set("k", b"", b"x" * 100_000) is True
    assert backend.get("k") == b"x" * 100_000
    assert backend.compare_and_set("other", b"x" * 100_000, b"no") is False  # only its own key
    assert backend.get_many(["k", "other"]) == {"k": b"x" * 100_000}


@pytest.mark.parametrize("query", PLAIN_AND_BOUNDED)
def test_compare_and_delete_deletes_only_a_matching_value(kind: Kind, query: str) -> None:
    backend = kind.open(query)
    assert backend.compare_and_delete("k", b"") is False  # missing: never matches
    backend.set_many({"k": b"mine", "j": b"mine"})
    for expected in (b"min", b"mine\x00", b"MINE", b""):
        assert backend.compare_and_delete("k", expected) is False
    assert backend.get_many(["k", "j"]) == {"k": b"mine", "j": b"mine"}
    deleted = backend.compare_and_delete("k", b"mine")
    assert deleted is True
    assert backend.get_many(["k", "j"]) == {"j": b"mine"}  # only its own key
    assert backend.compare_and_delete("k", b"mine") is False  # already gone
    assert data_keys(backend, kind.raw) == {backend.key_prefix + b"j"}
    backend.set("e", b"")
    assert backend.compare_and_delete("e", b"") is True  # the empty value is a value
    assert backend.get("e") is NO_VALUE


@pytest.mark.parametrize("query", PLAIN_AND_BOUNDED)
def test_compare_and_set_replaces_the_ttl_as_set_does(kind: Kind, query: str) -> None:
    backend = kind.open(query)
    name = backend.key_prefix + b"k"
    backend.set("k", b"1", ttl=100)
    assert backend.compare_and_set("k", b"1", b"2") is True  # ttl=None: no expiry any more
    assert kind.raw.pttl(name) == -1
    assert backend.compare_and_set("k", b"2", b"3", ttl=50) is True
    assert 49_000 < kind.raw.pttl(name) <= 50_000
    assert backend.compare_and_set("k", b"3", b"4", ttl=100.0001) is True  # PX, rounded up
    assert 99_000 < kind.raw.pttl(name) <= 100_001
    assert backend.compare_and_set("k", b"nope", b"5") is False  # a failure keeps the TTL
    assert 99_000 < kind.raw.pttl(name) <= 100_001
    assert backend.compare_and_set("k", b"4", b"6", ttl=None) is True
    assert kind.raw.pttl(name) == -1
    assert backend.get("k") == b"6"
    if backend.guarantees.eviction != NoEviction():  # the expiry index follows the TTL
        index = b"{cas}#ttl"
        assert kind.raw.zscore(index, name) is None
        assert backend.compare_and_set("k", b"6", b"7", ttl=30) is True
        assert kind.raw.zscore(index, name) is not None
        assert backend.compare_and_set("k", b"7", b"8") is True
        assert kind.raw.zscore(index, name) is None


@pytest.mark.parametrize("query", PLAIN_AND_BOUNDED)
def test_an_expired_key_never_matches_on_fakeredis_clock(query: str) -> None:
    clock = ManualClock(1000.0)
    backend = fakeredis_from_url(BackendURL(f"fakeredis://?{query}"), clock=clock)
    raw_client = fakeredis_client(clock)
    backend.set_many({"k": b"v", "d": b"v"}, ttl=1)
    clock.advance_to(1001.0)  # the expiry instant: still served (PTTL 0), so still live
    assert backend.compare_and_set("k", b"v", b"v", ttl=1) is True  # and a new TTL from now
    assert backend.compare_and_delete("d", b"v") is True
    backend.set("d", b"v", ttl=1)
    clock.advance_to(math.nextafter(1002.0, math.inf))  # both gone on the server now
    assert backend.compare_and_set("k", b"v", b"new") is False
    assert backend.compare_and_delete("d", b"v") is False
    assert backend.get_many(["k", "d"]) == {}
    if "capacity" in query:
        # The sorted sets still listed both: the failed comparisons forgot them.
        assert raw_client.zcard(b"{cas}#lru") == raw_client.zcard(b"{cas}#ttl") == 0
    backend.close()


def test_a_key_gone_around_the_bookkeeping_never_matches(kind: Kind) -> None:
    """A bounded namespace's sorted sets may list a key the server no longer has (expired,
    or removed around the adapter): it must not match, and it stops taking a place."""
    backend = kind.open("namespace=cas&capacity=2")
    backend.set("a", b"1", ttl=100)
    backend.set("b", b"2")
    kind.raw.delete(backend.key_prefix + b"a", backend.key_prefix + b"b")  # the sets keep them
    assert kind.raw.zcard(b"{cas}#lru") == 2
    assert backend.compare_and_set("a", b"1", b"new") is False
    assert backend.compare_and_delete("b", b"2") is False
    assert kind.raw.zcard(b"{cas}#lru") == kind.raw.zcard(b"{cas}#ttl") == 0
    assert backend.get_many(["a", "b"]) == {}
    assert data_keys(backend, kind.raw) == set()  # nothing written back


# A bounded namespace: a comparison is not a use; a replace is a write; a delete frees a place.
def test_lru_a_successful_compare_and_set_is_a_use(kind: Kind) -> None:
    backend = kind.open("namespace=lru&capacity=2")
    backend.set("a", b"1")
    backend.set("b", b"2")
    assert backend.compare_and_set("a", b"1", b"one") is True  # a is now the most recent
    assert kind.raw.zcard(b"{lru}#lru") == 2  # a matching key has its place: no growth
    assert survivors(backend, "ab") == "ab"  # nothing was evicted to make room
    backend.compare_and_set("b", b"2", b"two")  # b the most recent again
    backend.compare_and_set("a", b"one", b"uno")  # and now a
    backend.set("c", b"3")  # evicts b, the least recently used
    assert survivors(backend, "abc") == "ac"
    assert backend.get("a") == b"uno"


def test_lru_a_failed_comparison_is_not_a_use(kind: Kind) -> None:
    backend = kind.open("namespace=lru&capacity=2")
    backend.set("a", b"1")
    backend.set("b", b"2")
    uses = kind.raw.zrange(b"{lru}#lru", 0, -1, withscores=True)
    assert backend.compare_and_set("a", b"other", b"x") is False
    assert backend.compare_and_set("a", b"other", b"x", ttl=10) is False
    assert backend.compare_and_delete("a", b"other") is False
    assert backend.compare_and_set("missing", b"1", b"x") is False
    assert kind.raw.zrange(b"{lru}#lru", 0, -1, withscores=True) == uses  # untouched
    backend.set("c", b"3")  # a is still the least recently used
    assert survivors(backend, "abc") == "bc"


def test_lru_compare_and_delete_frees_a_place(kind: Kind) -> None:
    backend = kind.open("namespace=lru&capacity=2")
    backend.set("a", b"1", ttl=100)
    backend.set("b", b"2")
    assert backend.compare_and_delete("a", b"1") is True
    assert kind.raw.zscore(b"{lru}#lru", backend.key_prefix + b"a") is None
    assert kind.raw.zscore(b"{lru}#ttl", backend.key_prefix + b"a") is None
    backend.set("c", b"3")  # the place a freed: nothing evicted
    assert survivors(backend, "abc") == "bc"
    assert backend.compare_and_delete("b", b"2") is True
    assert backend.compare_and_delete("c", b"3") is True
    assert kind.raw.zcard(b"{lru}#lru") == kind.raw.zcard(b"{lru}#ttl") == 0
    backend.set_many({"x": b"1", "y": b"2"})
    assert survivors(backend, "abcxy") == "xy"


@pytest.mark.parametrize("query", PLAIN_AND_BOUNDED)
def test_compare_operations_are_one_round_trip(
    kind: Kind, query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = kind.open(query)  # the scripts were loaded when it opened
    with round_trips(monkeypatch) as sent:
        assert backend.compare_and_set("k", b"v", b"w") is False
        assert backend.compare_and_delete("k", b"v") is False
    assert sent[0] == 2
    backend.set("k", b"v")
    with round_trips(monkeypatch) as sent:
        assert backend.compare_and_set("k", b"v", b"w", ttl=5) is True
        assert backend.compare_and_delete("k", b"w") is True
    assert sent[0] == 2


def test_compare_operations_are_one_evalsha_on_the_server(
    redis_server: RedisServer, raw: redis.Redis
) -> None:
    for query in PLAIN_AND_BOUNDED:
        backend = redis_from_url(BackendURL(redis_server.url(query)))
        backend.set("k", b"v")
        raw.config_resetstat()
        backend.compare_and_set("k", b"v", b"w", ttl=5)
        backend.compare_and_set("k", b"v", b"w")
        backend.compare_and_delete("k", b"w")
        stats = raw.info("commandstats")
        calls = {name.removeprefix("cmdstat_"): entry["calls"] for name, entry in stats.items()}
        assert calls.get("evalsha") == 3
        assert "eval" not in calls
        assert "script|load" not in calls
        backend.close()


@pytest.mark.parametrize("query", PLAIN_AND_BOUNDED)
def test_compare_and_set_is_atomic_across_threads(kind: Kind, query: str) -> None:
    backend = kind.open(query)
    for round_ in range(10):
        backend.set("race", b"start", ttl=None if round_ % 2 else 30)
        results: list[tuple[int, bool]] = []
        barrier = threading.Barrier(8)

        def contender(
            i: int, barrier: threading.Barrier = barrier, results: list[tuple[int, bool]] = results
        ) -> None:
            barrier.wait()
            mine = f"thread-{i}".encode()
            results.append((i, backend.compare_and_set("race", b"start", mine, ttl=30)))

        threads = [threading.Thread(target=contender, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [i for i, won in results if won]
        assert len(results) == 8
        assert len(winners) == 1
        assert backend.get("race") == f"thread-{winners[0]}".encode()


@pytest.mark.parametrize("query", PLAIN_AND_BOUNDED)
def test_compare_and_delete_is_atomic_across_threads(kind: Kind, query: str) -> None:
    backend = kind.open(query)
    for _round in range(5):
        backend.set("lease", b"token")
        results: list[bool] = []
        barrier = threading.Barrier(8)

        def contender(barrier: threading.Barrier = barrier, results: list[bool] = results) -> None:
            barrier.wait()
            results.append(backend.compare_and_delete("lease", b"token"))

        threads = [threading.Thread(target=contender) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == [False] * 7 + [True]
        assert backend.get("lease") is NO_VALUE


def test_a_server_without_lua_offers_no_compare_operations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """fakeredis without lupa answers SCRIPT LOAD with an error: a plain namespace works
    without the compare operations, and says so; a bounded one cannot work at all."""
    client = fakeredis_client(ManualClock())

    def no_lua(*args: Any, **kwargs: Any) -> Any:
        raise redis.ResponseError("unknown command 'script', with args beginning with: 'load'")

    monkeypatch.setattr(client, "script_load", no_lua)
    plain = RedisBackend(client, namespace="nolua")
    assert plain.guarantees.compare_and_set is False
    plain.set("k", b"v")
    assert plain.get("k") == b"v"
    with pytest.raises(NotImplementedError, match="lupa"):
        plain.compare_and_set("k", b"v", b"w")
    with pytest.raises(NotImplementedError, match="lupa"):
        plain.compare_and_delete("k", b"v")
    assert plain.get("k") == b"v"
    with pytest.raises(ConfigurationError, match="needs Lua"):
        RedisBackend(client, namespace="nolua", capacity=2)


def test_a_user_refused_scripts_gets_unavailable(
    redis_server: RedisServer, raw: redis.Redis
) -> None:
    """An ACL that refuses scripts does not stop a plain namespace from opening (its other
    operations need none); the compare operations then fail as any refused command does."""
    raw.acl_setuser(
        "noscripts",
        enabled=True,
        passwords=["+pw"],
        keys=["*"],
        commands=["+@all", "-@scripting"],
    )
    try:
        url = f"redis://noscripts:pw@127.0.0.1:{redis_server.port}/0?namespace=acl"
        backend = redis_from_url(BackendURL(url))
        assert backend.guarantees.compare_and_set
        backend.set("k", b"v")
        assert backend.get("k") == b"v"
        with pytest.raises(BackendUnavailable, match="noscripts:\\*\\*\\*@"):
            backend.compare_and_set("k", b"v", b"w")
        with pytest.raises(BackendUnavailable, match="noscripts:\\*\\*\\*@"):
            backend.compare_and_delete("k", b"v")
        assert backend.get("k") == b"v"
        backend.close()
    finally:
        raw.acl_deluser("noscripts")


# ---------------------------------------------------------------------------- URLs
def test_url_forms(redis_server: RedisServer, raw: redis.Redis) -> None:
    base = f"127.0.0.1:{redis_server.port}"
    in_db3 = redis_from_url(BackendURL(f"redis://{base}/3?namespace=n"))
    in_db3.set("k", b"v")
    assert redis.Redis(port=redis_server.port, db=3).get(b"{n}:k") == b"v"
    assert raw.dbsize() == 0
    no_db = redis_from_url(BackendURL(f"redis://{base}"))
    no_db.set("k", b"v")
    assert raw.get(b"{cachespec}:k") == b"v"  # default namespace, db 0
    over_unix = redis_from_url(BackendURL(f"unix://{redis_server.unix_socket}?db=3&namespace=n"))
    assert over_unix.get("k") == b"v"
    # The factory's namespace (the conformance harness's) overrides the URL's.
    chosen = redis_from_url(BackendURL(f"redis://{base}/3?namespace=n"), namespace="other")
    assert chosen.namespace == "other"
    assert chosen.get("k") is NO_VALUE
    for backend in (in_db3, no_db, over_unix, chosen):
        backend.close()


def test_credentials_come_from_the_url(redis_server: RedisServer, raw: redis.Redis) -> None:
    password = "p@ss:w/rd"
    raw.acl_setuser(
        "alice", enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all"]
    )
    raw.acl_setuser("mallory", enabled=True, passwords=["+pw"], commands=["+ping"])
    try:
        good = f"redis://alice:{_quote(password)}@127.0.0.1:{redis_server.port}/0"
        backend = redis_from_url(BackendURL(good))
        backend.set("k", b"v")
        assert backend.get("k") == b"v"
        backend.close()
        wrong = f"redis://alice:hunter2@127.0.0.1:{redis_server.port}/0"
        with pytest.raises(BackendUnavailable) as refused:
            redis_from_url(BackendURL(wrong))
        assert f"redis://alice:***@127.0.0.1:{redis_server.port}/0" in str(refused.value)
        assert "hunter2" not in str(refused.value)
        # A user the server lets PING but not read: refused at the first call.
        limited = redis_from_url(BackendURL(f"redis://mallory:pw@127.0.0.1:{redis_server.port}"))
        with pytest.raises(BackendUnavailable, match="mallory:\\*\\*\\*@"):
            limited.get("k")
        limited.close()
    finally:
        raw.acl_deluser("alice", "mallory")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://:hunter2@127.0.0.1:1/0?bogus=1", "unknown option(s) bogus"),
        ("redis://:hunter2@127.0.0.1:1/0?timeout=0", "timeout=0.0 must be more than 0"),
        ("redis://:hunter2@127.0.0.1:1/0?timeout=soon", "not a number"),
        ("redis://:hunter2@127.0.0.1:1/0?capacity=0", "must be at least 1"),
        ("redis://:hunter2@127.0.0.1:1/0?capacity=many", "not a whole number"),
        ("redis://:hunter2@127.0.0.1:1/0?max_value_size=-1", "must be at least 0"),
        ("redis://:hunter2@127.0.0.1:1/0?namespace=", "namespace must be a non-empty str"),
        ("redis://:hunter2@127.0.0.1:1/zero", "the path names the database"),
        ("redis://:hunter2@127.0.0.1:0/0", "port 0 is not a server's port"),
        ("redis://:hunter2@127.0.0.1:1/0?db=1", "unknown option(s) db"),
        ("unix://:hunter2@/", "needs the socket's path"),
        ("unix://:hunter2@host/tmp/redis.sock", "takes no host"),
        ("fakeredis://host", "takes no host"),
        ("fakeredis:///path", "takes no path"),
        ("fakeredis://?timeout=1", "unknown option(s) timeout"),
        ("fakeredis://?capacity=-3", "must be at least 1"),
    ],
)
def test_url_errors_are_configuration_errors(url: str, message: str) -> None:
    # Port 1: a factory that connected before checking its options would fail differently.
    factory = fakeredis_from_url if url.startswith("fakeredis") else redis_from_url
    with pytest.raises(ConfigurationError) as refused:
        factory(BackendURL(url))
    assert message in str(refused.value)
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("query", ["", "capacity=4"])
def test_a_database_the_server_does_not_have_is_named(
    redis_server: RedisServer, query: str
) -> None:
    # The server decides how many databases it has (16 by default): its refusal of the
    # SELECT is reported as such, not as a server without Lua.
    for url in (
        redis_server.url(query, db=99),
        f"unix://{redis_server.unix_socket}?db=99{'&' + query if query else ''}",
    ):
        with pytest.raises(ConfigurationError) as refused:
            redis_from_url(BackendURL(url))
        message = str(refused.value)
        assert "database 99 is out of range for this server" in message
        assert "Lua" not in message
    # The highest database the server has is still accepted.
    redis_from_url(BackendURL(redis_server.url(query, db=15))).close()


def test_port_0_is_not_read_as_the_default_port() -> None:
    with pytest.raises(ConfigurationError, match="port 0") as refused:
        redis_from_url(BackendURL("redis://:hunter2@127.0.0.1:0"))
    assert "redis://:***@127.0.0.1:0" in str(refused.value)
    assert "hunter2" not in str(refused.value)


# ------------------------------------------------------------------- an unreachable server
def test_nobody_listening_is_unavailable_at_once() -> None:
    port = free_port()
    url = f"redis://:hunter2@127.0.0.1:{port}/0?timeout=2"
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as down:
        redis_from_url(BackendURL(url))
    assert time.monotonic() - started < 2
    assert f"redis://:***@127.0.0.1:{port}/0" in str(down.value)
    assert "hunter2" not in str(down.value)


def test_a_silent_server_is_unavailable_within_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) and never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=r"redis://:\*\*\*@127\.0\.0\.1"):
            redis_from_url(BackendURL(f"redis://:hunter2@127.0.0.1:{port}?timeout=0.3"))
        elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 0.3 + 0.2  # one timeout: redis-py's retries are off


def test_a_server_that_goes_away_makes_later_calls_unavailable(tmp_path: Path) -> None:
    server = start_redis(tmp_path)
    try:
        url = f"redis://:hunter2@127.0.0.1:{server.port}/0?timeout=1&capacity=4"
        backend = redis_from_url(BackendURL(url))
        backend.set("k", b"v")
        plain = redis_from_url(BackendURL(url.replace("&capacity=4", "&namespace=plain")))
    finally:
        server.stop()
    calls: list[Callable[[], object]] = [
        lambda: plain.compare_and_set("k", b"v", b"w", ttl=1),
        lambda: plain.compare_and_delete("k", b"v"),
        lambda: backend.get("k"),
        lambda: backend.get_many(["k"]),
        lambda: backend.set("k", b"v"),
        lambda: backend.add("k", b"v"),
        lambda: backend.set_many({"k": b"v"}, ttl=1),
        lambda: backend.delete("k"),
        lambda: backend.delete_many(["k"]),
        backend.clear,
        lambda: backend.compare_and_set("k", b"v", b"w"),
        lambda: backend.compare_and_delete("k", b"v"),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as down:
            call()
        assert time.monotonic() - started < 1
        assert f"redis://:***@127.0.0.1:{server.port}/0" in str(down.value)
        assert "hunter2" not in str(down.value)
    backend.close()
    plain.close()


def test_tls_url_speaks_tls(redis_server: RedisServer) -> None:
    # The test server speaks no TLS, so a rediss:// client cannot finish its handshake.
    with pytest.raises(BackendUnavailable, match=r"rediss://127\.0\.0\.1"):
        redis_from_url(BackendURL(f"rediss://127.0.0.1:{redis_server.port}/0?timeout=0.3"))


# ------------------------------------------------------------------------- packaging
def test_the_backends_package_does_not_import_the_drivers() -> None:
    code = (
        "import sys, cachespec.backends\n"
        "loaded = sorted(m for m in ('redis', 'fakeredis') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_client_must_return_bytes(redis_server: RedisServer) -> None:
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    with pytest.raises(ConfigurationError, match="decode_responses=False"):
        RedisBackend(client)
    client.close()


def test_a_key_of_another_redis_type_is_a_typed_error_and_get_or_compute_falls_through(
    redis_server: RedisServer, raw: redis.Redis
) -> None:
    """Someone else's list under a key of the namespace: WRONGTYPE used to escape as
    redis-py's ResponseError, untyped, and get_or_compute raised it."""
    backend = redis_from_url(BackendURL(redis_server.url("namespace=foreign")))
    raw.lpush(b"{foreign}:k", b"theirs")
    with pytest.raises(CacheError, match="WRONGTYPE"):
        backend.get("k")
    cache = Cache(backend)
    assert cache.get_or_compute("k", lambda: "from the source") == "from the source"
    assert cache.stats.errors >= 1
    assert raw.lrange(b"{foreign}:k", 0, -1) == [b"theirs"]  # left as it was
    backend.close()
