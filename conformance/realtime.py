"""Real time: the TTL properties on a server whose clock the harness cannot move.

A server the user runs (``redis://host``, ``memcached://host``) keeps its own time. There the
TTL properties run on the machine's monotonic clock instead of the harness's: "move the
clock" becomes a sleep, only to the instants that matter (just before an entry may expire,
or just past the instant it must be gone), and every backend call records when it started
and when it returned. The model then judges with that uncertainty and never guesses:

* a write took effect at some instant within its call;
* a read must hit only if every instant of its call lies before the earliest instant the
  entry may expire, and must miss only if every instant lies past the latest instant it may
  linger;
* both instants are widened by the slack: the declared ``ttl_resolution`` late, and
  :data:`SLACK` either way (the server's own clock granularity and the time it reads it).

Nothing is judged from how long the harness meant to sleep, only from the times measured
around each call, so a loaded machine loses checks (more reads fall where either outcome is
allowed), never raises a false alarm. docs/design.md, "Real time", has the decisions.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any, ClassVar, cast

from hypothesis import Phase
from hypothesis import settings as Settings
from hypothesis.control import current_build_context
from hypothesis.errors import Flaky, InvalidArgument

from cachespec.backends import Backend
from cachespec.spec import CacheModel, Guarantees
from cachespec.spec.model import Presence, _Entry

from .checks import Check, CheckFailed, MachineCheck
from .focus import Focus
from .machines import CacheMachine, build_machine
from .pools import AT, BEFORE, REAL_TIME_SAFE_TTL, ttls
from .properties.stateful import without_add
from .staleness import CallersMachine
from .stillclock import StillMachineCheck
from .target import Target
from .tenant import Tenant

# Either way around an expiry instant, on top of the declared resolution: Redis computes an
# expiry from a millisecond clock it may have read at the start of its event-loop turn, and
# memcached from a whole-second one the adapter's margin already covers. 10 ms is ten of
# Redis's ticks; docs/design.md, "Real time", has the measurement.
SLACK = 0.010

# How far before an entry's earliest expiry a "just before" read is aimed: the read must
# also end before that instant to be judged, and a call on loopback takes well under 1 ms.
BEFORE_MARGIN = 2 * SLACK

# The TTLs written in real time. A backend that tells milliseconds apart (Redis: 2 ms)
# gets fractions of a second; one that counts whole seconds (memcached, whose declared
# resolution is 4.5 s) gets a second and a second and a half (a fraction its adapter must
# round up, not down), each at least its clock's tick.
FINE_TTLS = (0.05, 0.1, 0.2, 0.5)
COARSE_TTLS = (1.0, 1.5)
# Above this declared resolution a backend is taken to count whole seconds.
COARSE_RESOLUTION = 0.1

# Examples and steps per example in real time, at the default size (a size scales the
# examples): each example sleeps, so fewer and shorter programs than on the harness clock.
EXAMPLES = 10
COARSE_EXAMPLES = 6
STEPS = 25
# The operation properties need longer programs: what they check shows only after a write,
# the operation, and a read past a TTL. At 25 steps their mutants passed some seeds at the
# test's budget (a compare_and_set without TTL 2 of 10, a set_many without TTL 2 of 20 in
# ops.mixed, a clear that never reaches memcached 1 of 20); at 50, none of 20 each. Steps
# cost little: the sleep is bounded per example (allowance).
OPERATION_STEPS = 50
LONGER = dict.fromkeys(
    ("ops.clear", "ops.compare_and_set", "ops.mixed", "ttl.never"), OPERATION_STEPS
)

# The properties that run in real time, by id: each keeps a mutant it rejects in real time
# (tests/test_realtime_servers.py). The operations beside the TTLs (clear, compare_and_set,
# mixed) need nothing of their own: every judgement of the model goes through _presence,
# which reads the measured interval (docs/design.md, "Real time", "Operations near an
# expiry").
REAL_TIME = frozenset(
    {
        "ttl.lives",
        "ttl.expires",
        "ttl.overwrite",
        "ttl.never",
        "ttl.long",
        "ops.add",
        "ops.clear",
        "ops.compare_and_set",
        "ops.mixed",
    }
)

# The properties about the arguments a guest caps on a server you run (ttl=None, a TTL over
# an hour): their machines lift the Tenant's cap, each key registered with the guest reaper
# before it is written (guest_reaper.py; docs/design.md, "Uncapped TTLs on a server you
# run"). Everywhere else the cap stays.
UNCAPPED = frozenset({"ttl.never", "ttl.long"})

# The properties whose machines sleep past the instant an overwritten TTL would have ended
# its entry (RealTimeModel.lingering), so that an overwrite that kept the old TTL shows:
# ttl.never's KEEPTTL mutant failed 15 of 20 seeds without it, 30 of 30 with. Not the
# others': on Redis it made ops.clear take 2.5 times as long and ttl.overwrite a fifth
# more (5 seeds each, default size), and their mutants fail without it.
PAST_OVERWRITES = frozenset({"ttl.never"})

# ttl.long's TTLs in real time: both sides of memcached's 30-day line, where an adapter
# must switch to an absolute exptime (its margin takes 30 days - 1 s over the line too),
# and a year. Any of them sent as a relative exptime over the line is read as a date in
# 1970: the entry is gone at once, which real time shows. It cannot show a TTL counted
# short by a day: that needs the harness's clock. No short TTLs beside them: ttl.lives,
# ttl.expires and ttl.overwrite check those, and here they cost sleep (a default run on
# memcached took 37 s at the median with them, over 6 runs) for nothing the long ones show.
BOUNDARY_TTLS = (2_591_999, 2_592_000, 2_592_001, 31_536_000)


# How a result that ran here says so (runner.Result.clock, the report's table).
CLOCK = "real time"


def ttl_pool(guarantees: Guarantees) -> tuple[float, ...]:
    """The short TTLs written in real time, above the backend's declared resolution tick."""
    if guarantees.ttl_resolution > COARSE_RESOLUTION:
        return COARSE_TTLS
    return FINE_TTLS


def longest_window(guarantees: Guarantees) -> float:
    """How long after a write its entry may still be served, at the longest TTL drawn."""
    return max(ttl_pool(guarantees)) + guarantees.ttl_resolution + 2 * SLACK


def allowance(guarantees: Guarantees) -> float:
    """The most one example's steps may sleep: enough to outlive the longest TTL drawn and
    its resolution about once, so that a run sleeps little (6 s on memcached, 1 s on
    Redis) whatever the program asks for. Its teardown may sleep one such window more."""
    return max(1.0, longest_window(guarantees))


def _reporting() -> bool:
    """Whether Hypothesis is replaying a failing example only to print its program: in real
    time that replay need not sleep (RealTimeCheck keeps the first run's violation, judged
    on the times it measured), which halves what a failure costs."""
    try:
        return bool(current_build_context().is_final)
    except InvalidArgument:  # outside a test: nothing is being replayed
        return False


class RealClock:
    """The machine's monotonic clock. ``advance_to`` sleeps until then, within the
    example's allowance; past it, it does not sleep (the judgement never assumes it did)."""

    tick = 1e-6

    def __init__(self, allowance: float) -> None:
        self.allowance = allowance
        self.slept = 0.0

    def __call__(self) -> float:
        return time.monotonic()

    def now(self) -> float:
        return time.monotonic()

    def advance_to(self, when: float) -> float:
        wait = when - time.monotonic()
        if wait <= 0 or self.slept + wait > self.allowance or _reporting():
            return self.now()
        self.slept += wait
        while (left := when - time.monotonic()) > 0:
            time.sleep(left)
        return self.now()


class RealTimeModel(CacheModel):
    """The model of one namespace on a real-time server: it judges each call over the
    interval it was measured to take (see the module docstring)."""

    def __init__(self, guarantees: Guarantees, *, origin: float, slack: float = SLACK) -> None:
        super().__init__(guarantees, origin=origin)
        self._slack = slack
        self._call = (origin, origin)
        self._ever_timed = False  # whether any entry with a TTL was written (expiry_windows)
        self._overwritten: list[float] = []  # when overwritten TTLs would have ended (_write)

    def record(self, started: float, ended: float) -> None:
        """The last backend call ran from ``started`` to ``ended``: the next operation the
        machine reports is that call's."""
        self._call = (started, ended)

    def _span(self, now: float) -> tuple[float, float]:
        # The machine reads its clock before some calls and after others; the interval
        # covering both that reading and the recorded call holds the call's instant.
        started, ended = self._call
        return min(now, started), max(now, ended)

    def _gone_from(self, entry: _Entry) -> float:
        """The first instant the entry must be gone: its write's last possible instant,
        plus its TTL, the declared resolution and the slack."""
        landed: float = getattr(entry, "landed_by", entry.written_at)
        return landed + (entry.ttl or 0.0) + self._resolution + self._slack

    def _presence(self, entry: _Entry, now: float) -> Presence:
        expires = entry.expires
        if expires is not None:
            earliest, latest = self._span(now)
            if latest >= expires - self._slack:  # the call may have come at or past expiry
                return "gone" if earliest >= self._gone_from(entry) else "maybe"
        return "maybe" if entry.vanishable else "live"

    def _write(self, now: float, key: str, value: bytes, ttl: float | None) -> None:
        earliest, latest = self._span(now)
        old = self._entries.get(key)
        if old is not None and old.expires is not None:
            # The old TTL ends no entry any more; an adapter that kept it (SET ... KEEPTTL)
            # shows only past that instant, so the machine sleeps there too (lingering).
            self._overwritten.append(self._gone_from(old))
        super()._write(earliest, key, value, ttl)
        # _Entry has no field for it: the write's last possible instant rides along.
        setattr(self._entries[key], "landed_by", latest)  # noqa: B010
        self._ever_timed = self._ever_timed or self._entries[key].ttl is not None

    def _expire(self, now: float) -> None:
        for key in list(self._timed):
            entry = self._entries[key]
            if self._presence(entry, now) == "gone":
                self._remove(key, self._expired_in_real_time(entry))

    def _expired_in_real_time(self, entry: _Entry) -> Callable[[str], str]:
        landed = getattr(entry, "landed_by", entry.written_at)
        return lambda key: (
            f"{key!r} was written within [{self.at(entry.written_at)}, {self.at(landed)}] "
            f"with ttl={entry.ttl!r}, and is gone for sure from {self.at(self._gone_from(entry))}"
            f" (the declared resolution {self._resolution}s and the real-time slack "
            f"{self._slack}s after the write's last possible instant)"
        )

    def expiry_windows(self) -> list[tuple[float, float]]:
        """``[earliest expiry, surely gone)`` for every entry with a TTL.

        Once an entry with a TTL was written, never empty: where every such entry is gone,
        one empty window at the origin, long past. ``advance_to_expiry`` runs while this is
        not empty (its precondition), and which entries are gone depends on when the calls
        ran: the same program must draw the same steps when Hypothesis replays it at other
        instants. Every user of a window looks only at the ones still ahead."""
        windows = []
        for key in self._timed:
            entry = self._entries[key]
            assert entry.expires is not None
            windows.append((entry.expires - self._slack, self._gone_from(entry)))
        if not windows and self._ever_timed:
            windows.append((self._origin, self._origin))
        return windows

    def lingering(self) -> list[float]:
        """When each TTL an overwrite replaced would have surely ended its entry: past
        those instants a read shows an overwrite that kept the old TTL. Not expiry windows:
        no precondition depends on them, and a stale one is never a rule's target."""
        return list(self._overwritten)

    def _describe_entry(self, key: str, now: float) -> str:
        entry = self._entries[key]
        text = super()._describe_entry(key, now)
        earliest, latest = self._span(now)
        text += (
            f"; in real time, the call ran within [{self.at(earliest)}, {self.at(latest)}]"
            f" and the write landed within [{self.at(entry.written_at)}, "
            f"{self.at(getattr(entry, 'landed_by', entry.written_at))}]"
        )
        if entry.expires is not None:
            text += (
                f", so it may expire from {self.at(entry.expires - self._slack)} and is gone "
                f"for sure from {self.at(self._gone_from(entry))} (slack {self._slack}s)"
            )
        return text


class TimedBackend:
    """A backend whose every call tells the model when it started and when it returned."""

    def __init__(self, backend: Backend, model: RealTimeModel) -> None:
        self._backend = backend
        self._model = model

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._backend, name)
        if not callable(found):
            return found

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return found(*args, **kwargs)
            finally:
                self._model.record(started, time.monotonic())

        return timed


class RealTimeMachine(CacheMachine):
    """A property's machine on the real clock, beside a :class:`RealTimeModel`."""

    def __init__(self) -> None:
        super().__init__()
        self.real_clock = RealClock(allowance(self.guarantees))
        self.clock = self.real_clock
        self.real_model = RealTimeModel(self.guarantees, origin=self.clock.now())
        self.model = self.real_model
        if self.uncapped and isinstance(self.backend, Tenant):
            self.backend.lift_cap()  # a guest on a server you run: UNCAPPED
        self.backend = cast(Backend, TimedBackend(self.backend, self.model))

    # The first violation each example raised, for RealTimeCheck (set per built class).
    failures: ClassVar[list[AssertionError]]
    # Whether the machine writes ttl=None and long TTLs uncapped as a guest (UNCAPPED).
    uncapped: ClassVar[bool] = False
    # Whether it also sleeps past the instants overwritten TTLs would have ended entries
    # (RealTimeModel.lingering; PAST_OVERWRITES).
    past_overwrites: ClassVar[bool] = False

    def _run(self, step: Callable[[], None]) -> None:
        # Real time moves between calls by itself: no clock_granularity step is needed.
        try:
            step()
        except AssertionError as exc:
            self._broken = True
            if not self.failures:
                self.failures.append(exc)
            raise
        except BaseException:
            self._broken = True
            raise

    def move_clock(self, when: float) -> None:
        """Sleep until ``when``, but only while it matters: not past the instant the last
        entry the allowance can outlive is surely gone, and not at all when none is."""
        now = self._now()
        reach = now + self.real_clock.allowance - self.real_clock.slept
        ends = [end for _, end in self.model.expiry_windows()]
        if self.past_overwrites:
            ends += self.real_model.lingering()
        pending = [end for end in ends if now < end <= reach]
        if pending:
            self.clock.advance_to(min(when, max(pending)))

    def teardown(self) -> None:
        """Before the session closes, walk forward through the pending expiry windows, if
        the allowance lets it: read every key written just before each window opens, and
        once past the last one. Each example then ends with judged reads of every entry
        whose TTL runs out, on both sides of its expiry, whatever its program did before;
        the stops cost no sleep beyond the last window."""
        try:
            if not self._broken and self.model.keys_written:
                clock = self.real_clock
                clock.allowance = clock.slept + longest_window(self.guarantees)
                now = self._now()
                reach = now + clock.allowance - clock.slept
                windows = [w for w in self.model.expiry_windows() if now < w[1] <= reach]
                befores = sorted({start - BEFORE_MARGIN for start, _ in windows})
                for instant in [*(b for b in befores if b > now), math.inf]:
                    self.move_clock(instant)
                    self._run(self._read_all)
        finally:
            super().teardown()

    def _read_all(self) -> None:
        self.do_get_many(self.model.keys_written)

    def boundary(self, start: float, end: float, offset: str) -> float:
        """Where to sleep to around ``[earliest expiry, surely gone)``: a little before it
        (still judged live if the read is quick), at it, or just past it."""
        if offset == BEFORE:
            return start - BEFORE_MARGIN
        return start if offset == AT else end


class RealTimeCallers(CallersMachine):
    """A callers' machine (the leases', the hangs', staleness.ttl's) on the machine's
    monotonic clock, which the strategies read too, sleeping at most its allowance."""

    # The first violation each example raised, for RealTimeCheck, which reports it when
    # Hypothesis's replay (at other instants, without sleeps) passes.
    failures: ClassVar[list[AssertionError]]
    guarantees: ClassVar[Guarantees]
    broken = False  # a violation was raised: the teardown sleeps no more (the verdict is in)

    def _open_session(self) -> Backend:
        inner = super()._open_session()
        self.real_clock = RealClock(self._allowance())
        self.clock = self.real_clock
        # The slack, either way around the server's expiry, rides on the resolution: the
        # bounds judged and the instants the rules sleep to both include it
        # (docs/design.md, "The slack").
        self.resolution = inner.guarantees.ttl_resolution + SLACK
        return inner

    def _allowance(self) -> float:
        # One window at the longest TTL drawn, and the edges' own margins.
        return allowance(self.guarantees) + 2 * SLACK


def real_time_focus(focus: Focus, guarantees: Guarantees) -> Focus:
    """``focus`` with its short TTLs replaced by real-time ones and its clock moves made a
    fraction of them; TTLs that cannot run out during a run are kept as they are."""
    pool = ttl_pool(guarantees)
    short = [t for t in focus.ttls if t is not None and t < REAL_TIME_SAFE_TTL]
    # One TTL that outlives the run, where the focus had any: the entries beside the ones
    # that expire, fewer of them than on the harness clock, where a draw costs no sleep.
    long = [t for t in focus.ttls if t is not None and t >= REAL_TIME_SAFE_TTL]
    kept = ((None,) if None in focus.ttls else ()) + tuple(long[:1])
    ttls = kept + (pool if short else ())
    # The longest step outlives the longest TTL and its resolution: past every window.
    past = max(pool) + guarantees.ttl_resolution + 2 * SLACK
    steps = (min(pool) / 2, min(pool), past)
    return dataclasses.replace(focus, ttls=ttls, steps=steps)


class RealTimeCheck:
    """A stateful property in real time: few short examples, and no shrinking (each replay
    sleeps; the failing program is printed as found)."""

    def __init__(self, check: Check, failures: list[AssertionError], steps: int = STEPS) -> None:
        self._check = check
        self._failures = failures
        self._steps = steps

    def run(self, settings: Settings, seed_value: int, examples: int) -> None:
        chosen = Settings(
            settings,
            max_examples=examples,
            stateful_step_count=min(settings.stateful_step_count, self._steps),
            phases=[Phase.explicit, Phase.generate],
        )
        self._failures.clear()
        try:
            self._check.run(chosen, seed_value, examples)
        except Flaky as exc:
            # Hypothesis replays a failing program to report it; in real time the replay
            # runs at other instants, and may land where either answer is allowed. The
            # first run's violation stands on its own: it is judged on measured times.
            first = next(iter(getattr(exc, "exceptions", ())), None) or exc.__cause__
            if not isinstance(first, AssertionError) and self._failures:
                # The replay failed elsewhere (Hypothesis's FlakyReplay), and printed no
                # program: say so beside the first run's violation.
                first = CheckFailed(
                    f"{self._failures[0]} (in real time; Hypothesis's replay of this "
                    "program, at other instants, failed elsewhere, so no program is printed)"
                )
            if not isinstance(first, AssertionError):
                raise
            # Hypothesis put the program on the flaky error: carry it over (__notes__, as
            # add_note would on 3.11).
            notes = [*getattr(first, "__notes__", []), *getattr(exc, "__notes__", [])]
            setattr(first, "__notes__", notes)  # noqa: B010
            raise first from None


@dataclasses.dataclass(frozen=True)
class RealTimeMachineCheck(StillMachineCheck):
    """A callers' machine in real time (rtstaleness.py, rtleases.py): a :class:`RealTimeCheck`
    (few short examples, no shrinking, the first run's violation kept where Hypothesis's
    replay passes) around a still clock's check, so that a run whose every example was
    rejected (callers waiting for time the allowance refused) is "cannot check here"."""

    failures: list[AssertionError] = dataclasses.field(default_factory=list)

    def run(self, settings: Settings, seed_value: int, examples: int) -> None:
        inner = StillMachineCheck(self.machine)
        RealTimeCheck(inner, self.failures).run(settings, seed_value, examples)


def machine_check(
    name: str, base: type, namespace: dict[str, Any], configure: Any
) -> RealTimeMachineCheck:
    """A :class:`RealTimeMachineCheck` of a machine made from ``base`` with ``namespace``
    (its target, plan, strategies, guarantees) and ``configure``, the ``@initialize`` rule
    that draws TTLs the backend's resolution can tell apart (rtstaleness.py, rtleases.py).
    The plan is made to move time: here it moves, for real."""
    failures: list[AssertionError] = []
    plan = dataclasses.replace(namespace["plan"], still=False)
    body = {**namespace, "plan": plan, "failures": failures, "configure": configure}
    # Were every example rejected (callers that wait for time the allowance refused), the
    # property is "cannot check here", as on a still clock (StillMachineCheck).
    return RealTimeMachineCheck(type(name + "RT", (base,), body), failures)


def examples(scale: float, guarantees: Guarantees) -> int:
    """Real-time examples at a size's ``scale``: fewer where each costs seconds of sleep
    (a whole-second clock, whose windows are seconds long)."""
    base = COARSE_EXAMPLES if guarantees.ttl_resolution > COARSE_RESOLUTION else EXAMPLES
    return max(2, round(base * scale))


# What a real-time example costs on average, as a share of the longest window it may sleep
# through (longest_window): measured over a whole default check of a server you run,
# 2026-12-06, 2.9 s a property on Redis against windows of 5.2 s, and 24 s on memcached
# against 36 s. Many examples end before the window does, or never sleep at all.
SLEPT_SHARE = 0.6


def forecast(guarantees: Guarantees, scale: float) -> float:
    """Seconds a real-time property is expected to take: its examples, each a share of
    the longest window it may sleep through (measured: docs/design.md, "Real time")."""
    return examples(scale, guarantees) * longest_window(guarantees) * SLEPT_SHARE


def runs_in_real_time(prop_id: str) -> bool:
    return prop_id in REAL_TIME


def build(
    prop_id: str, focus: Callable[[Guarantees], Focus], target: Target, g: Guarantees
) -> RealTimeCheck:
    """The real-time check of the stateful property ``prop_id`` built from ``focus``."""
    class_name = "".join(part.title() for part in prop_id.replace(".", "_").split("_")) + "RT"
    # Without add where the backend declares add=False, as on the harness clock (ops.mixed
    # writes with add among its rules).
    chosen = real_time_focus(without_add(focus(g), g), g)
    if prop_id == "ttl.long":
        # Several long TTLs, not one, and no short ones: BOUNDARY_TTLS.
        chosen = dataclasses.replace(chosen, ttls=ttls(BOUNDARY_TTLS, g.max_ttl, none=False))
    elif prop_id == "ttl.never":
        # ttl=None as often as a short TTL: its mutant (KEEPTTL) shows only where None
        # overwrites a short TTL still running. At one draw in six, with 25 steps, it
        # passed 2 seeds of 10 at the test's budget; so weighted, with 50, none of 10.
        chosen = dataclasses.replace(chosen, ttls=(None,) * len(ttl_pool(g)) + chosen.ttls)
    machine = build_machine(class_name, target, chosen, RealTimeMachine)
    failures: list[AssertionError] = []
    machine.failures = failures
    machine.uncapped = prop_id in UNCAPPED
    machine.past_overwrites = prop_id in PAST_OVERWRITES
    return RealTimeCheck(MachineCheck(machine), failures, LONGER.get(prop_id, STEPS))


def cannot_run(prop_id: str, area: str, target: Target) -> str:
    """Why a property that needs the harness's clock does not run in real time on
    ``target``: "cannot check here", with the reason."""
    if area == "lru":
        return "checks eviction, which needs a reconfigured server (maxmemory)"
    return (
        "not checked in real time yet (it needs the harness's clock, and "
        f"{target.name} runs in real time, where only {', '.join(sorted(REAL_TIME))} run): "
        "check a throwaway server on a controlled clock with `cachespec check redis` or "
        "`memcached`"
    )
