"""The source of truth, and how stale a cached read may be under each strategy.

The model keeps every version of every key of the "database" with the instant it stopped
being current. A read that returns version ``v`` at time ``t`` has staleness ``t`` minus the
last instant ``v`` was current (0 while ``v`` is current). Each strategy bounds it
(docs/design.md, "Staleness bounds"):

========================  =====================================================
strategy                  bound
========================  =====================================================
TTL only                  ``ttl`` plus the backend's TTL resolution
explicit invalidation     0 for any read that starts after the invalidation returned
write-through             0 for any read that starts after the write returned
event invalidation        0 after the event is handled; the safety-net TTL if it is lost
guarded cache-aside       0 after invalidation, whatever the interleaving
stale-while-revalidate    the TTL, or more while one regeneration runs beside
========================  =====================================================

Two clocks are involved. *Steps* order what concurrent callers did (a read "starts after" an
invalidation when its first step comes after the invalidation's last); *time* is the
harness's clock, which TTLs run on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import Violation


@dataclass(frozen=True)
class StrategyBound:
    """How stale a read may be under one strategy, as data the suite reads (the table
    above): fresh once ``fresh_after`` has happened (None: no call makes it so, only time
    does), and, with ``ttl``, never staler than the fill TTL plus the backend's resolution,
    counted from the later of the version's supersession and its last fill."""

    strategy: str
    fresh_after: str | None
    ttl: bool = True

    def describe(self) -> str:
        fresh = f"fresh after {self.fresh_after}" if self.fresh_after else "no call makes it fresh"
        return f"{self.strategy}: {fresh}" + ("; at most the TTL stale" if self.ttl else "")


# Keyed by the writer a staleness property runs (conformance/staleness.py, Plan.writer).
BOUNDS: dict[str, StrategyBound] = {
    "source": StrategyBound("TTL only", None),
    "invalidate": StrategyBound("explicit invalidation", "the invalidation"),
    "write_through": StrategyBound("write-through", "the write"),
    "event": StrategyBound("event invalidation", "the delivery of the event"),
}
# A strategy that declares stale-while-revalidate (cachespec.spec.promises.Promises) may
# serve a read past the TTL bound above while one regeneration of its key runs beside it:
# its bound is the TTL plus that one regeneration (docs/design.md, "Strategy promises").
STALE_WHILE_REVALIDATE = "while one regeneration of the key runs beside the read"


@dataclass
class Version:
    """One value a key held in the source of truth."""

    key: str
    number: int
    value: object
    written_step: int
    written_time: float
    # When the next version replaced it (None while it is current).
    superseded_step: int | None = None
    superseded_time: float | None = None
    # The step after which no read may return it: the end of the invalidation (or the
    # write-through, or the event handling) that followed the write that superseded it.
    fresh_after_step: int | None = None
    fresh_after_what: str = ""
    # When a caller that had read or written this version wrote it into the cache: a TTL
    # counts from there, however late a slow caller's fill landed. The steps, where known,
    # explain a stale read from what happened (``explain_stale``).
    cached_times: list[float] = field(default_factory=list)
    cached_steps: list[int] = field(default_factory=list)

    def describe(self) -> str:
        text = f"version {self.number} of {self.key!r} ({self.value!r})"
        if self.superseded_time is not None:
            text += f", superseded at step {self.superseded_step}"
        return text


@dataclass
class SourceOfTruth:
    """The database: versions per key, and the bounds the strategy promises for reads."""

    initial: dict[str, object] = field(default_factory=dict)
    _versions: dict[str, list[Version]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, value in self.initial.items():
            self._versions[key] = [Version(key, 0, value, 0, float("-inf"))]

    def current(self, key: str) -> Version:
        return self._versions[key][-1]

    def versions(self, key: str) -> list[Version]:
        return list(self._versions[key])

    def write(self, key: str, value: object, step: int, time: float) -> Version:
        """Commit a new version of ``key`` (values must be unique per key to be traced)."""
        history = self._versions.setdefault(key, [])
        if history:
            old = history[-1]
            old.superseded_step, old.superseded_time = step, time
        version = Version(key, len(history), value, step, time)
        history.append(version)
        return version

    def made_fresh(self, key: str, written: Version, step: int, what: str) -> None:
        """From ``step`` on, reads of ``key`` must return ``written`` or newer: the strategy
        has done what it promises after the write (an invalidation returned, say)."""
        for version in self._versions[key]:
            if version.number >= written.number:
                break
            if version.fresh_after_step is None or step < version.fresh_after_step:
                version.fresh_after_step, version.fresh_after_what = step, what

    def cached(self, version: Version, time: float, step: int | None = None) -> None:
        """``version`` was written into the cache at ``time`` (its TTL starts again), at
        ``step`` of the callers' log when known."""
        version.cached_times.append(time)
        if step is not None:
            version.cached_steps.append(step)

    def version_of(self, key: str, value: object) -> Version | None:
        for version in reversed(self._versions.get(key, [])):
            if version.value == value:
                return version
        return None

    def check_read(
        self,
        key: str,
        value: object,
        *,
        started_step: int,
        time: float,
        ended: float,
        ttl_bound: float | None,
        operation: str,
        overrun: str = "",
    ) -> None:
        """Raise :class:`Violation` if a read of ``key`` that started at ``started_step``
        (at ``time``), ended at ``ended`` and returned ``value`` is staler than the strategy
        allows.

        The TTL bound counts from the later of two instants: the value stopped being current,
        or it was last written into the cache before the read ended. A caller that read the
        source, then stalled before its fill landed, puts an old value in the cache for a
        full TTL: the TTL cannot help that (the stale-set race, which the staleness-0 rule
        judges), and how late a guarded fill can land is its lease's business. ``overrun``
        is added to the explanation of a read past the TTL bound."""
        version = self.version_of(key, value)
        if version is None:
            raise Violation(
                operation,
                f"returned {value!r}",
                f"a value {key!r} held in the source",
                f"the source never held it (versions: {[v.value for v in self.versions(key)]})",
            )
        if version.superseded_time is None:
            return
        if version.fresh_after_step is not None and started_step > version.fresh_after_step:
            newer = self._versions[key][version.number + 1]
            raise Violation(
                operation,
                f"returned {version.describe()}",
                f"only version {newer.number} or newer",
                f"the read started at step {started_step}, after {version.fresh_after_what} "
                f"returned at step {version.fresh_after_step}, so staleness must be 0"
                + explain_stale(version),
            )
        fills = [t for t in version.cached_times if t <= ended]
        since = max([version.superseded_time, *fills])
        staleness = time - since
        if ttl_bound is not None and staleness > ttl_bound:
            last_fill = f", last cached at {max(fills)!r} s" if fills else ""
            raise Violation(
                operation,
                f"returned {version.describe()} (at {version.superseded_time!r} s)"
                f"{last_fill}, served {staleness!r} s after that",
                f"at most {ttl_bound!r} s",
                "an expiry overrun: the TTL (plus the backend's resolution) "
                "bounds how long a superseded value may be served after it was superseded or "
                "last cached" + overrun,
            )


def explain_stale(version: Version) -> str:
    """Why a read after the change returned ``version``, from the cache writes recorded for
    it (docs/design.md, "Staleness bounds"): only what those show, never a guess."""
    fresh_after = version.fresh_after_step
    if fresh_after is None or not version.cached_times:
        # Not written into the cache by a caller that handled it: served from elsewhere.
        return (
            f": {version.describe()} was never written into the cache by a caller that had "
            "it, so the read got it from somewhere the change did not reach"
        )
    late = [step for step in version.cached_steps if step > fresh_after]
    if late:
        return (
            f": a caller that had read or written it before it was superseded (step "
            f"{version.superseded_step}) wrote it into the cache at step {late[0]}, after "
            f"{version.fresh_after_what} returned (a stale set: the stale-set race)"
        )
    if version.cached_steps:
        last = max(version.cached_steps)
        return (
            f": it was last written into the cache at step {last}, before "
            f"{version.fresh_after_what} returned, and was still served after it"
        )
    return ""  # cached, at steps not recorded: nothing to say that the events show
