"""Configurations drawn per example (conformance/drawn.py): what the draws found."""

from __future__ import annotations

from cachespec.conformance.replay import replay


def test_a_lease_longer_than_the_fill_ttl_keeps_the_ttl_bound() -> None:
    """Found by drawing lease times above the fill TTL, on our own guarded cache: a reader
    joined a flight whose compute read the source before a write, after more than the fill
    TTL; the change event then removed the flight's lease, so its fill never landed, and the
    reader got the old value 6 s after it was superseded, where the bound is 5 s. A flight
    older than the caller's TTL is no longer joined (backends/cache.py, _in_flight)."""
    state = replay("memory://", "staleness.events")
    try:
        state.configure(fill_ttl=5.0, lease_ttl=10.0)
        state.read_past_source(key="price")  # R0 read version 0 and holds it for its fill
        state.start_write(key="price")  # W1 writes version 1 to the source ...
        state.finish_task(task=1)  # ... and publishes the change event
        state.advance(seconds=6.0)  # past the fill TTL, within the lease
        state.start_read(key="price")  # R2 ...
        state.step(task=1)  # ... misses and joins R0's flight, 6 s old
        state.deliver_event(which=0, fate="deliver")  # R0's lease goes: its fill is dropped
        state.finish_task(task=0)
        state.finish_task(task=0)  # R2 computes anew: version 1, within the bound
    finally:
        state.teardown()
