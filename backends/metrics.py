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

import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import Any

from .cache import DEFAULT_TTL, Cache, CacheStats
from .contract import ConfigurationError, check_seconds
from .sampling import TICKER

log = logging.getLogger(__name__)

#: OpenTelemetry's default rate of latency samples: a histogram's record costs a few
#: microseconds, so 100 a second cost a busy process about 0.05% of a core.
DEFAULT_SAMPLES_PER_SECOND = 100.0

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
    "lease_waits": "callers that found another caller's lease and waited for its value",
    "lease_takeovers": "callers that waited for another's lease, then computed",
    "early_refreshes": "hits recomputed before they expired",
    "stale_served": "hits served while another caller refreshed them",
    "fills_failed": "computed values the serializer refused (returned, not cached)",
}
assert set(DESCRIPTIONS) == {f.name for f in fields(CacheStats)}, "describe every counter"


def time_calls(
    cache: Cache[Any],
    record: Callable[[float], None],
    *,
    every: int | None = None,
    per_second: float | None = None,
) -> Timing:
    """Call ``record(seconds)`` with the duration of ``cache``'s ``get_or_compute`` calls
    (on ``time.perf_counter``; an exception still counts its time): every call by default,
    every ``every``-th call, or at most ``per_second`` calls a second (the next call after
    each arming; a quiet cache has each of its calls timed up to that rate). Returns the
    :class:`Timing`; call it to stop.

    Every call, or one in ``every``, puts a wrapper on each call's path. ``per_second``
    puts one only on the calls it times: the others run the method itself (docs/design.md,
    "Metrics"; what each costs is in bench/README.md)."""
    per_second = _check_sampling(cache, every, per_second)
    timing = Timing(cache, record, every or 1, per_second)
    setattr(cache, _TIMING, timing)  # the mark of a timed cache, armed or not
    if per_second is not None:
        TICKER.add(timing)
    return timing


def _check_sampling(cache: Cache[Any], every: int | None, per_second: float | None) -> float | None:
    """``per_second`` as a float (or None) once the sampling options and the cache are
    fit for a timing; else a ConfigurationError, before anything is set up."""
    if every is not None and per_second is not None:
        raise ConfigurationError("give every or per_second, not both")
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise ConfigurationError(f"every must be an int >= 1, got {every!r}")
    if _shadowed(cache) or getattr(cache, _TIMING, None) is not None:
        raise ConfigurationError("this cache's get_or_compute is timed already; stop that first")
    return None if per_second is None else check_seconds("per_second", per_second)


#: The attribute that marks a timed cache. A rate-sampled one is unwrapped between two
#: armings, so the wrapper alone cannot say that it is timed.
_TIMING = "_cachespec_timing"

# The cache's attributes are only ever set, read and deleted by name, never through
# ``vars(cache)``: asking for an instance's ``__dict__`` makes CPython build it, and its
# attribute reads then leave the fast path for good (a memory hit took 15% longer).


def _shadowed(cache: Cache[Any]) -> bool:
    """Something stands in front of the ``get_or_compute`` method of ``cache``."""
    return getattr(cache.get_or_compute, "__self__", None) is not cache


def _unwrap(cache: Cache[Any], wrapper: Callable[..., Any]) -> None:
    """Take ``wrapper`` from in front of the method, if it is still there (it may race with
    another thread's call of a one-shot wrapper: only one of them deletes it)."""
    if getattr(cache, "get_or_compute", None) is wrapper:
        with contextlib.suppress(AttributeError):
            del cache.get_or_compute


class Timing:
    """A running timing of one cache's ``get_or_compute``: call it to stop (idempotent)."""

    def __init__(
        self,
        cache: Cache[Any],
        record: Callable[[float], None],
        every: int,
        per_second: float | None,
    ) -> None:
        clock = time.perf_counter
        self.interval = 0.0 if per_second is None else 1.0 / per_second
        self._lock = threading.Lock()
        self._stopped = False  # guarded by _lock
        # The cache weakly: the ticker holds a rate-sampled timing until it is stopped, and
        # must not keep a dropped cache alive with it.
        self._cache = weakref.ref(cache)
        method = type(cache).get_or_compute

        def timed(owner: Cache[Any], key: str, compute: Callable[[], Any], ttl: Any) -> Any:
            started = clock()
            try:
                return method(owner, key, compute, ttl)
            finally:
                try:
                    record(clock() - started)
                except Exception:  # a collector that fails must not fail the read it timed
                    log.warning("time_calls: record failed", exc_info=True)

        def once(key: str, compute: Callable[[], Any], ttl: Any = DEFAULT_TTL) -> Any:
            owner = self._cache()
            assert owner is not None  # it is calling us
            # Disarmed before the call: a concurrent caller that finds it gone runs
            # untimed, and one that got here too only adds a sample.
            _unwrap(owner, once)
            return timed(owner, key, compute, ttl)

        calls = [0]  # a sample counter: a lost update under threads only shifts the sample

        def sampled(key: str, compute: Callable[[], Any], ttl: Any = DEFAULT_TTL) -> Any:
            calls[0] += 1
            if calls[0] % every:
                return method(cache, key, compute, ttl)
            return timed(cache, key, compute, ttl)

        def every_call(key: str, compute: Callable[[], Any], ttl: Any = DEFAULT_TTL) -> Any:
            return timed(cache, key, compute, ttl)

        # An attribute of the instance shadows the method: an untimed call runs the method
        # itself, with no check on its path.
        self._wrapper = once if per_second is not None else every_call if every == 1 else sampled
        if per_second is None:
            cache.get_or_compute = self._wrapper  # type: ignore[method-assign]

    def arm(self) -> None:
        """Time the next call (rate sampling: the ticker calls this ``per_second`` times a
        second). Once the cache is gone, the timing stops itself."""
        with self._lock:
            cache = self._cache()
            if cache is None:
                self._stopped = True
                TICKER.remove(self)
            elif not self._stopped:
                cache.get_or_compute = self._wrapper  # type: ignore[method-assign]

    def __call__(self) -> None:
        """Stop timing: the cache runs its method itself again."""
        with self._lock:
            self._stopped = True
            TICKER.remove(self)
            cache = self._cache()
            if cache is None:
                return
            _unwrap(cache, self._wrapper)
            if getattr(cache, _TIMING, None) is self:  # not a later timing's
                delattr(cache, _TIMING)


def opentelemetry(
    cache: Cache[Any],
    meter: Any,
    *,
    name: str = "cache",
    every: int | None = None,
    per_second: float | None = None,
) -> Timing:
    """Report ``cache``'s counters on an OpenTelemetry ``meter`` as observable counters
    (``cachespec.<name>.<counter>``, read at each collection) and the latency of
    ``get_or_compute`` as a histogram (``cachespec.<name>.latency``, in seconds).

    The histogram is sampled as :func:`time_calls` samples: by default at most
    :data:`DEFAULT_SAMPLES_PER_SECOND` calls a second, so a busy cache pays for timing on
    those calls only and a quiet one has every call timed; ``every=1`` times them all. How
    many calls there were is the counters' to say. Returns the :class:`Timing`; call it
    to stop."""
    if every is None and per_second is None:
        per_second = DEFAULT_SAMPLES_PER_SECOND
    _check_sampling(cache, every, per_second)  # before anything is created on the meter
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
    return time_calls(cache, histogram.record, every=every, per_second=per_second)


__all__ = ["DEFAULT_SAMPLES_PER_SECOND", "DESCRIPTIONS", "Timing", "opentelemetry", "time_calls"]
