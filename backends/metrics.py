"""A cache's metrics: counters read when a collector asks, latency timed only if asked.

The counters are :class:`~cachespec.backends.cache.CacheStats`, which the cache keeps
anyway: a collector reads them when it scrapes (OpenTelemetry's observable counters work
this way), so counting costs the hot path nothing it did not already pay. The one figure a
cache does not keep is how long ``get_or_compute`` takes: :func:`time_calls` times it for
a callback, and only then does the cost appear (docs/design.md, "Metrics"; the figures are
in bench/README.md).

With OpenTelemetry (``pip install 'cachespec[otel]'``)::

    from opentelemetry import metrics
    from cachespec.backends.metrics import opentelemetry

    opentelemetry(cache, metrics.get_meter("shop"), name="prices")
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import Any

from .cache import DEFAULT_TTL, Cache, CacheStats
from .contract import ConfigurationError

log = logging.getLogger(__name__)

#: What each counter means, for a collector's descriptions.
DESCRIPTIONS: dict[str, str] = {
    "hits": "reads answered from the cache",
    "misses": "reads the cache could not answer",
    "fills": "computed values stored",
    "fills_dropped": "fills dropped because an invalidation came first",
    "invalidations": "keys invalidated",
    "decode_failures": "entries that did not decode (read as misses, and dropped)",
    "errors": "cache failures that get_or_compute fell through",
    "computes": "times a compute function ran",
    "shared": "results handed to callers that did not compute them",
    "lease_takeovers": "callers that waited for another's lease, then computed",
    "early_refreshes": "hits recomputed before they expired",
    "stale_served": "hits served while another caller refreshed them",
    "fills_failed": "computed values the serializer refused (returned, not cached)",
}
assert set(DESCRIPTIONS) == {f.name for f in fields(CacheStats)}, "describe every counter"


def time_calls(
    cache: Cache[Any], record: Callable[[float], None], *, every: int = 1
) -> Callable[[], None]:
    """Call ``record(seconds)`` with the duration of every ``every``-th ``get_or_compute``
    of ``cache`` (on ``time.perf_counter``; an exception still counts its time). Returns
    the function that stops it. ``every`` > 1 samples, for a hot path that cannot pay two
    clock reads a call."""
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigurationError(f"every must be an int >= 1, got {every!r}")
    if "get_or_compute" in vars(cache):
        raise ConfigurationError("this cache's get_or_compute is timed already; stop that first")
    timed = cache.get_or_compute  # the bound method: the wrapper calls it, nothing else
    clock = time.perf_counter

    def every_call(key: str, compute: Callable[[], Any], ttl: Any = DEFAULT_TTL) -> Any:
        started = clock()
        try:
            return timed(key, compute, ttl)
        finally:
            try:
                record(clock() - started)
            except Exception:  # a collector that fails must not fail the read it timed
                log.warning("time_calls: record failed", exc_info=True)

    calls = [0]  # a sample counter: a lost update under threads only shifts the sample

    def sampled(key: str, compute: Callable[[], Any], ttl: Any = DEFAULT_TTL) -> Any:
        calls[0] += 1
        if calls[0] % every:
            return timed(key, compute, ttl)
        return every_call(key, compute, ttl)

    # An attribute of the instance shadows the method: an untimed cache runs the method
    # itself, with no check on its path.
    wrapper = every_call if every == 1 else sampled
    cache.get_or_compute = wrapper  # type: ignore[method-assign]

    def stop() -> None:
        if vars(cache).get("get_or_compute") is wrapper:  # not a later timing's
            del vars(cache)["get_or_compute"]

    return stop


def opentelemetry(
    cache: Cache[Any], meter: Any, *, name: str = "cache", every: int = 16
) -> Callable[[], None]:
    """Report ``cache``'s counters on an OpenTelemetry ``meter`` as observable counters
    (``cachespec.<name>.<counter>``, read at each collection) and the latency of
    ``get_or_compute`` as a histogram (``cachespec.<name>.latency``, in seconds, of one
    call in ``every``: a histogram's record costs several times a hit on memory, so the
    default samples; how many calls there were is the counters' to say). Returns the
    function that stops the timing."""
    from opentelemetry.metrics import (  # noqa: PLC0415 - the otel extra, imported when used
        CallbackOptions,
        Observation,
    )

    prefix = f"cachespec.{name}"
    stats = cache.stats

    def observe(counter: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            yield Observation(getattr(stats, counter))

        return callback

    for counter, description in DESCRIPTIONS.items():
        meter.create_observable_counter(
            f"{prefix}.{counter}", callbacks=[observe(counter)], description=description
        )
    histogram = meter.create_histogram(
        f"{prefix}.latency", unit="s", description="get_or_compute, from call to return"
    )
    return time_calls(cache, histogram.record, every=every)


__all__ = ["DESCRIPTIONS", "opentelemetry", "time_calls"]
