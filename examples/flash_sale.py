"""The flash-sale price, cached five ways: measured worst staleness next to each bound.

    python examples/flash_sale.py                 # a throwaway redis-server on a fake clock
    python examples/flash_sale.py --backend memory

A product's price is read once a second for twenty simulated minutes. At minute 2 a flash
sale cuts it; at minute 12 the sale ends. Every read is scored: how long ago did the price it
returned stop being the price? Each strategy caches with a 10-minute TTL:

* TTL only: nothing tells the cache about the sale.
* explicit invalidation: the pricing code deletes the key after each update.
* event invalidation: a change event deletes the key 3 s later; the sale's end is lost.
* write-through: the pricing code writes the new price through the cache.
* naive cache-aside: explicit invalidation, but one reader was mid-fill when the sale
  started (it read the old price just before the update and stored it just after the
  invalidation: the stale-set race).
* guarded cache-aside: the same race, through ``Cache.get_or_compute``.

Time is the harness's: the server runs under libfaketime and nothing sleeps.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cachespec import Cache, MemoryBackend, WriteThrough
from cachespec.backends import Backend, open_backend
from cachespec.backends.strategies import EventInvalidator, naive_cache_aside
from cachespec.conformance import ManualClock, servers
from cachespec.conformance.clock import HarnessClock

KEY = "product:42:price"
TTL = 600.0
EVENT_DELAY = 3.0
CHANGES = {120.0: 59.0, 720.0: 99.0}  # when the price changes, and to what
DURATION = 1200


@dataclass
class PriceTable:
    """The database: the price and when each price stopped being current."""

    price: float = 99.0
    version: int = 0
    superseded: dict[float, float] = field(default_factory=dict)  # price -> time

    def write(self, value: float, now: float) -> int:
        self.superseded[self.price] = now
        self.price = value
        self.version += 1
        return self.version

    def staleness(self, value: float, now: float) -> float:
        return 0.0 if value == self.price else now - self.superseded[value]


Scenario = Callable[[Cache, PriceTable, HarnessClock], float]


def simulate(
    cache: Cache,
    db: PriceTable,
    clock: HarnessClock,
    read: Callable[[], float],
    on_change: Callable[[float, float], object],
) -> float:
    """Read once a second; apply the price changes; return the worst staleness seen."""
    start, worst = clock.now(), 0.0
    pending: list[tuple[float, Callable[[], None]]] = []  # delayed actions (events)
    for second in range(DURATION):
        now = start + second
        clock.advance_to(now)
        for due, action in [p for p in pending if p[0] <= now]:
            action()
            pending.remove((due, action))
        if float(second) in CHANGES:
            on_change(CHANGES[float(second)], now)
        worst = max(worst, db.staleness(read(), clock.now()))
    return worst


def ttl_only(cache: Cache, db: PriceTable, clock: HarnessClock) -> float:
    return simulate(
        cache,
        db,
        clock,
        lambda: cache.get_or_compute(KEY, lambda: db.price, TTL),
        db.write,
    )


def invalidation(cache: Cache, db: PriceTable, clock: HarnessClock) -> float:
    def change(price: float, now: float) -> None:
        db.write(price, now)
        cache.invalidate(KEY)

    return simulate(
        cache, db, clock, lambda: cache.get_or_compute(KEY, lambda: db.price, TTL), change
    )


def events(cache: Cache, db: PriceTable, clock: HarnessClock) -> float:
    invalidator = EventInvalidator(cache)
    start = clock.now()
    delivered: set[float] = set()

    def read() -> float:
        now = clock.now()
        for when in CHANGES:
            # The sale's start is delivered EVENT_DELAY later; the sale's end is lost.
            if when == 120.0 and when not in delivered and now >= start + when + EVENT_DELAY:
                invalidator.handle(KEY)
                delivered.add(when)
        return cache.get_or_compute(KEY, lambda: db.price, TTL)

    return simulate(cache, db, clock, read, db.write)


def write_through(cache: Cache, db: PriceTable, clock: HarnessClock) -> float:
    through = WriteThrough(
        cache,
        lambda key, value: db.write(value, clock.now()),
        source_version=lambda key: db.version,
    )
    cache.backend.set(KEY, b"V" + (0).to_bytes(8, "big") + cache.serializer.dumps(db.price))

    return simulate(
        cache,
        db,
        clock,
        lambda: cache.get_or_compute(KEY, lambda: db.price, TTL),
        lambda price, now: through.write(KEY, price),
    )


def race(reader: Callable[[Cache, Callable[[], float]], float]) -> Scenario:
    """Invalidation, with one reader mid-fill at the sale: it reads the old price, the
    update and its invalidation happen, then it stores what it read."""

    def scenario(cache: Cache, db: PriceTable, clock: HarnessClock) -> float:
        def change(price: float, now: float) -> None:
            cache.invalidate(KEY)  # the cached price is gone: the next reader misses

            def source_read_racing_the_update() -> float:
                old = db.price
                db.write(price, now)
                cache.invalidate(KEY)  # the writer's invalidation, before the fill lands
                return old

            reader(cache, source_read_racing_the_update)

        return simulate(cache, db, clock, lambda: reader(cache, lambda: db.price), change)

    return scenario


SCENARIOS: list[tuple[str, str, Scenario]] = [
    ("TTL only", f"TTL ({TTL:.0f} s)", ttl_only),
    ("explicit invalidation", "0 s", invalidation),
    ("event invalidation", f"{EVENT_DELAY:.0f} s delivered; TTL when lost", events),
    ("write-through", "0 s", write_through),
    (
        "naive cache-aside, racing",
        "none: up to the TTL",
        race(lambda cache, compute: naive_cache_aside(cache, KEY, compute, TTL)),
    ),
    (
        "guarded cache-aside, racing",
        "0 s",
        race(lambda cache, compute: cache.get_or_compute(KEY, compute, TTL)),
    ),
]


@contextmanager
def backend_factory(kind: str) -> Iterator[tuple[Callable[[], Backend], HarnessClock]]:
    if kind == "memory":
        clock = ManualClock()
        yield (lambda: MemoryBackend(clock=clock)), clock
        return
    with servers.start_redis() as server:
        assert server.clock is not None
        counter = iter(range(10_000))
        yield (lambda: open_backend(server.url, namespace=f"sale{next(counter)}")), server.clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["redis", "memory"], default="redis")
    args = parser.parse_args()
    print(
        f"backend: {args.backend}; {DURATION} reads, one a second; price changes at "
        f"{', '.join(f'{t:.0f} s' for t in CHANGES)}; TTL {TTL:.0f} s"
    )
    print()
    print("| strategy | worst staleness seen | bound |")
    print("|---|---:|---|")
    with backend_factory(args.backend) as (make, clock):
        for name, bound, scenario in SCENARIOS:
            cache = Cache(make(), default_ttl=TTL)
            worst = scenario(cache, PriceTable(), clock)
            print(f"| {name} | {worst:.0f} s | {bound} |")
            cache.backend.close()


if __name__ == "__main__":
    main()
