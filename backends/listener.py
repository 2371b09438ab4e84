"""Redis pub/sub as a feed of change events, through outages: :class:`RedisInvalidationListener`.

A thread reads the messages of one channel (each one's data is a key) and hands each key to
an :class:`~cachespec.backends.strategies.EventInvalidator`. Until issue #13 the thread ended
on the first error and every later event was ignored without a signal. Now
(docs/design.md, "Outages"):

* a key whose invalidation raises is tried again after each of ``retry_delays`` (on the
  injected ``clock``), while the thread goes on reading; after the last it is given up and
  counted as ``failed``: the invalidator's safety-net TTL then bounds how long its entry
  stays stale;
* a lost connection is opened and subscribed again, after each of ``reconnect_delays`` in
  turn (the last one repeated), slept with the injected ``sleep``;
* pub/sub delivers at most once: what was published between the loss and the new
  subscription is gone. The listener knows when that window closes (the server confirms the
  subscription, whether this module or redis-py's own retry reconnected) and then calls
  ``on_gap()``. Point it at a full invalidation (``backend.clear``) to make the gap cost a
  cold cache instead of stale entries; by default it only counts the gap, and the safety TTL
  bounds what the lost events left stale. A failing ``on_gap`` is retried as a key is;
* :meth:`RedisInvalidationListener.health` reports the thread's state and counters, and
  ``on_health`` is called with them whenever something fails or recovers.

redis-py is not imported here: the client is the caller's, and this package works without
the ``redis`` extra.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from .contract import BackendUnavailable, Clock, ConfigurationError

__all__ = [
    "DEFAULT_RECONNECT_DELAYS",
    "DEFAULT_RETRY_DELAYS",
    "ListenerHealth",
    "RedisInvalidationListener",
]

DEFAULT_RETRY_DELAYS: Final = (0.1, 0.5, 2.0, 5.0)
"""Seconds before each new attempt at a key whose invalidation failed; then it is given up."""

DEFAULT_RECONNECT_DELAYS: Final = (0.0, 0.1, 0.5, 1.0, 2.0, 5.0)
"""Seconds before each attempt to subscribe again after a lost connection; the last repeats."""

POLL: Final = 0.1
"""Seconds (real) the thread waits for a message before it looks at due retries and stop."""


class Handler(Protocol):
    """What the listener feeds: an :class:`~.strategies.EventInvalidator`, or the like."""

    def handle(self, event: str, /) -> None: ...


@dataclasses.dataclass(frozen=True)
class ListenerHealth:
    """A snapshot of a listener (see :meth:`RedisInvalidationListener.health`)."""

    alive: bool  # the thread runs: it ends only with stop() (or an interpreter's exit)
    subscribed: bool  # connected, and the server confirmed the subscription
    handled: int  # events whose keys were invalidated (at the first attempt or a later one)
    retried: int  # failed attempts followed by another one
    failed: int  # events given up after the last retry: the safety TTL bounds them
    pending: int  # events (and gap handlings) waiting for their next attempt
    disconnects: int  # connections lost
    reconnects: int  # subscriptions confirmed again after a loss: each one closed a gap
    gaps_handled: int  # on_gap() calls that returned (or gaps counted, without on_gap)
    last_error: str | None  # the latest failure, as "Type: message"


_GAP: Final = object()  # in the retry schedule: the on_gap() of a closed gap


class RedisInvalidationListener:
    """A thread that handles Redis pub/sub messages on ``channel`` as change events.

    Each message's data is one key (UTF-8), handed to ``invalidator.handle``. The
    constructor subscribes and waits (up to ``subscribe_timeout``) for the server to
    confirm, so an event published after it returns is handled, or lost in a gap that
    ``on_gap`` hears of; a server it cannot reach is
    :class:`~cachespec.backends.BackendUnavailable`. ``stop()`` ends the thread.

    ``clock`` (monotonic seconds) times the retries of failed keys and ``sleep`` the waits
    before a new connection (default: a wait that ``stop()`` cuts short); tests inject both.
    See the module for what happens on errors and on reconnection.
    """

    def __init__(
        self,
        client: Any,
        channel: str,
        invalidator: Handler,
        *,
        on_gap: Callable[[], object] | None = None,
        on_health: Callable[[ListenerHealth], object] | None = None,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        reconnect_delays: Sequence[float] = DEFAULT_RECONNECT_DELAYS,
        subscribe_timeout: float = 5.0,
    ) -> None:
        if not isinstance(channel, str) or not channel:
            raise ConfigurationError(f"channel must be a non-empty str, got {channel!r}")
        if not callable(getattr(invalidator, "handle", None)):
            raise ConfigurationError(f"invalidator must have handle(key), got {invalidator!r}")
        for name, given in (("on_gap", on_gap), ("on_health", on_health), ("sleep", sleep)):
            if given is not None and not callable(given):
                raise ConfigurationError(f"{name} must be callable or None, got {given!r}")
        if not callable(clock):
            raise ConfigurationError(f"clock must be callable, got {clock!r}")
        self._retry_delays = _delays("retry_delays", retry_delays, allow_empty=True)
        self._reconnect_delays = _delays("reconnect_delays", reconnect_delays, allow_empty=False)
        if not _seconds(subscribe_timeout) or subscribe_timeout == 0:
            raise ConfigurationError(
                f"subscribe_timeout must be finite seconds > 0, got {subscribe_timeout!r}"
            )
        self._client = client
        self._channel = channel
        self._invalidator = invalidator
        self._on_gap = on_gap
        self._on_health = on_health
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep if sleep is not None else self._stop.wait
        self._lock = threading.Lock()  # the counters, read by health() from other threads
        self._counts = dict.fromkeys(
            ("handled", "retried", "failed", "disconnects", "reconnects", "gaps_handled"), 0
        )
        self._last_error: str | None = None
        self._subscribed = False
        self._pending: dict[object, tuple[int, float]] = {}  # key or _GAP: (attempts, due)
        self._pubsub: Any = None
        self._attempts = 0  # connection attempts since the last confirmed subscription
        try:
            self._pubsub = self._subscribe()
            if not self._await_confirmation(subscribe_timeout):
                raise TimeoutError(f"no confirmation within {subscribe_timeout:g} s")
        except Exception as exc:
            self._close_pubsub()
            raise BackendUnavailable(
                f"cannot subscribe to {channel!r}: {type(exc).__name__}: {exc}"
            ) from exc
        self._thread = threading.Thread(target=self._run, name=f"invalidate {channel}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------ public
    def health(self) -> ListenerHealth:
        """The thread's state and counters now."""
        with self._lock:
            return ListenerHealth(
                alive=self._thread.is_alive() and not self._stop.is_set(),
                subscribed=self._subscribed,
                pending=len(self._pending),
                last_error=self._last_error,
                **self._counts,
            )

    def stop(self) -> None:
        """End the thread (it finishes the message in hand) and close the subscription."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._close_pubsub()
        with self._lock:
            self._subscribed = False
        self._report()

    # ------------------------------------------------------------------------ the thread
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception as exc:  # a bug, or a broken injected sleep: go on, reconnected
                self._lost(exc)

    def _step(self) -> None:
        """One turn of the thread: retry what is due, reconnect if needed, read a message."""
        self._retry_due()  # also while disconnected: the cache may well be reachable
        if self._pubsub is None:
            # The delays grow until a subscription is confirmed (_dispatch resets them): a
            # server that accepts connections and drops them at once is not hammered.
            delays = self._reconnect_delays
            self._sleep(delays[min(self._attempts, len(delays) - 1)])
            self._attempts += 1
            if self._stop.is_set():
                return
            try:
                self._pubsub = self._subscribe()
            except Exception as exc:  # the server is still away: wait the next delay
                self._note_error(exc)
                return
        try:
            message = self._pubsub.get_message(timeout=POLL)
        except Exception as exc:  # the connection is lost (redis-py's own retries ran out)
            self._lost(exc)
            return
        if message is not None:
            self._dispatch(message)

    def _subscribe(self) -> Any:
        """A new pub/sub connection subscribed to the channel (confirmed later)."""
        pubsub = self._client.pubsub(ignore_subscribe_messages=False)
        try:
            pubsub.subscribe(self._channel)
        except BaseException:
            with contextlib.suppress(Exception):
                pubsub.close()
            raise
        return pubsub

    def _await_confirmation(self, timeout: float) -> bool:
        """In the constructor: read until the server confirms the first subscription."""
        deadline = time.monotonic() + timeout  # real time: the server's answer, not a TTL
        while (left := deadline - time.monotonic()) > 0:
            message = self._pubsub.get_message(timeout=left)
            if message is not None and message.get("type") == "subscribe":
                self._subscribed = True
                return True
        return False

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "message":
            data = message["data"]
            try:
                key = data.decode("utf-8", "surrogatepass") if isinstance(data, bytes) else data
            except UnicodeDecodeError as exc:  # no key of ours: count it, and read on
                self._failed(data, len(self._retry_delays), exc)
                return
            self._attempt(str(key), 0)
        elif kind == "subscribe":
            # A confirmation after the first is a new subscription after a lost connection
            # (ours, or redis-py's own retry): the gap in which events were lost closes here.
            self._attempts = 0
            with self._lock:
                self._subscribed = True
                self._counts["reconnects"] += 1
            self._attempt(_GAP, 0)
            self._report()

    def _attempt(self, item: object, attempts: int) -> None:
        """Invalidate ``item`` (a key, or the gap's ``on_gap``); schedule it again on failure."""
        try:
            if item is _GAP:
                if self._on_gap is not None:
                    self._on_gap()
            else:
                assert isinstance(item, str)
                self._invalidator.handle(item)
        except Exception as exc:
            self._failed(item, attempts, exc)
            return
        with self._lock:
            self._counts["gaps_handled" if item is _GAP else "handled"] += 1
            recovered = self._pending.pop(item, None) is not None
        if recovered or attempts:
            self._report()

    def _failed(self, item: object, attempts: int, exc: Exception) -> None:
        with self._lock:
            self._last_error = f"{type(exc).__name__}: {exc}"
            if attempts == 0 and item in self._pending:
                pass  # an earlier event of this key is scheduled: it keeps its schedule
            elif attempts < len(self._retry_delays):
                self._counts["retried"] += 1
                due = self._clock() + self._retry_delays[attempts]
                self._pending[item] = (attempts + 1, due)
            else:
                self._counts["failed"] += 1  # the safety TTL bounds it from here
                self._pending.pop(item, None)
        self._report()

    def _retry_due(self) -> None:
        if not self._pending:
            return
        now = self._clock()
        due = [(item, tries) for item, (tries, when) in list(self._pending.items()) if when <= now]
        for item, tries in due:
            with self._lock:
                self._pending.pop(item, None)
            self._attempt(item, tries)

    def _lost(self, exc: Exception) -> None:
        self._close_pubsub()
        with self._lock:
            self._subscribed = False
            self._counts["disconnects"] += 1
        self._note_error(exc)

    def _note_error(self, exc: Exception) -> None:
        with self._lock:
            self._last_error = f"{type(exc).__name__}: {exc}"
        self._report()

    def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                pubsub.close()

    def _report(self) -> None:
        if self._on_health is not None:
            with contextlib.suppress(Exception):  # a broken callback must not stop the listener
                self._on_health(self.health())


def _seconds(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value >= 0
    )


def _delays(name: str, delays: object, *, allow_empty: bool) -> tuple[float, ...]:
    if isinstance(delays, (str, bytes)) or not isinstance(delays, Sequence):
        raise ConfigurationError(f"{name} must be a sequence of seconds, got {delays!r}")
    if not all(_seconds(delay) for delay in delays) or (not delays and not allow_empty):
        need = "" if allow_empty else "at least one, "
        raise ConfigurationError(f"{name} must be {need}finite seconds >= 0, got {delays!r}")
    return tuple(float(delay) for delay in delays)
