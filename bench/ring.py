"""The memcached ring adapter beside the single-server one, in one run.

    python bench/ring.py [--quick]

The harness starts a throwaway memcached and a throwaway ring of 3 nodes on loopback, in
real time. Every figure is the median over interleaved repeats of a timed loop, in
microseconds of wall-clock time per call. Goals (issue #16), as ratios: a single-key call
on the ring at most 1.10x the same call on one server; a ``get_many`` of 100 keys spread over
the 3 nodes (one round trip per node) at least 10x faster than 100 single gets. Measured,
never asserted.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import socket
import sys
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from adapters import KEYS, VALUE, median_of, raw_pair
from pymemcache.client.base import Client  # type: ignore[import-untyped]
from pymemcache.client.hash import HashClient  # type: ignore[import-untyped]

from cachespec.backends import open_backend
from cachespec.conformance import servers
from cachespec.conformance.servers.ring import start_ring


def _gets(client: Any, key: str, ops: int) -> Callable[[], None]:
    def loop() -> None:
        for _ in range(ops):
            client.get(key)

    return loop


def _raw_sockets(
    nodes: list[tuple[str, int]], ops: int
) -> tuple[dict[str, tuple[Callable[[], None], int]], list[socket.socket]]:
    """What a call that needs a second node costs below any client: a two-key ``get`` on one
    node's socket, against the same two keys on two nodes, both requests sent before either
    reply is read (the ring's read of a key and its counter). Bare sockets, no parsing."""
    socks = [socket.create_connection(node) for node in nodes[:2]]
    for sock in socks:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"set bench-a 0 0 %d\r\n%s\r\n" % (len(VALUE), VALUE))
        sock.sendall(b"set bench-b 0 0 2\r\n20\r\n")
        _until_end(sock, b"STORED\r\nSTORED\r\n")
    first, second = socks

    def one_node() -> None:
        for _ in range(ops):
            first.sendall(b"get bench-b bench-a\r\n")
            _until_end(first, b"END\r\n")

    def two_nodes() -> None:
        for _ in range(ops):
            first.sendall(b"get bench-a\r\n")
            second.sendall(b"get bench-b\r\n")
            _until_end(first, b"END\r\n")
            _until_end(second, b"END\r\n")

    return {"raw one node": (one_node, ops), "raw two nodes": (two_nodes, ops)}, socks


def _until_end(sock: socket.socket, end: bytes) -> None:
    reply = b""
    while not reply.endswith(end):
        reply += sock.recv(65536)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats")
    args = parser.parse_args()
    ops, repeats = (200, 5) if args.quick else (2000, 9)
    print(f"command: {shlex.join(['python', *sys.argv])}")
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    print(f"machine: {platform.platform()}, {platform.machine()}")
    print(f"pymemcache {version('pymemcache')}; {repeats} repeats x {ops} calls, median us/call")
    print()
    with servers.start_memcached(fake_time=False) as single, start_ring(fake_time=False) as ring:
        one = open_backend(single.url, namespace="bench")
        many = open_backend(ring.url, namespace="bench")
        try:
            for backend in (one, many):
                backend.set_many(dict.fromkeys(KEYS, VALUE))
            loops = {
                f"{label} {op}": loop
                for label, backend in (("one", one), ("ring", many))
                for op, loop in raw_pair(backend.get, backend.set, backend.get_many, ops).items()
            }
            # pymemcache's own clients, for what its HashClient costs by itself.
            raw_one = Client((single.host, single.port))
            raw_many = HashClient([(node.host, node.port) for node in ring.nodes])
            for label, client in (("raw one", raw_one), ("raw ring", raw_many)):
                client.set("bench-raw", VALUE)
                loops[f"{label} get hit"] = (_gets(client, "bench-raw", ops), ops)
            floor, socks = _raw_sockets([(node.host, node.port) for node in ring.nodes], ops)
            loops.update(floor)
            figures = median_of(loops, repeats)
            raw_one.close()
            raw_many.close()
            for sock in socks:
                sock.close()
        finally:
            one.close()
            many.close()
    print("| operation | one server (us) | ring (us) | ring / one | goal |")
    print("|---|---:|---:|---:|---|")
    for op in ("get hit", "get miss", "set", "get_many 100", "100 single gets"):
        mine, base = figures[f"ring {op}"], figures[f"one {op}"]
        goal = ""
        if op in ("get hit", "get miss", "set"):
            goal = "<= 1.10: " + ("met" if mine / base <= 1.10 else "NOT met")
        print(f"| {op} | {base:,.1f} | {mine:,.1f} | {mine / base:.2f} | {goal} |")
    raw = figures["raw ring get hit"] / figures["raw one get hit"]
    print(
        f"| get hit, pymemcache's own clients | {figures['raw one get hit']:,.1f} | "
        f"{figures['raw ring get hit']:,.1f} | {raw:.2f} | |"
    )
    two = figures["raw two nodes"] / figures["raw one node"]
    print(
        f"| bare sockets: two keys on two nodes, overlapped, / on one node | "
        f"{figures['raw one node']:,.1f} | {figures['raw two nodes']:,.1f} | {two:.2f} | |"
    )
    batch = figures["ring 100 single gets"] / figures["ring get_many 100"]
    verdict = "met" if batch >= 10 else "NOT met"
    print(f"| ring: 100 single gets / get_many 100 | | | {batch:.1f}x | >= 10x: {verdict} |")


if __name__ == "__main__":
    main()
