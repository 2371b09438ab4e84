"""Stateful properties: a Hypothesis machine per promise, over ops, TTLs, keys, values and
eviction, each beside the model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from hypothesis import strategies as st

from cachespec.spec import ExactLRU, Guarantees

from ..checks import Check, MachineCheck
from ..focus import Focus, Rule
from ..machines import build_machine
from ..namespaces import build_namespace_machine
from ..pools import (
    AT,
    BEFORE,
    BIG_STEPS,
    DISTINCT_KEY_GROUPS,
    DISTINCT_KEYS,
    FALSY_VALUES,
    FEW_KEYS,
    HARD_KEYS,
    LONG_TTLS,
    LRU_KEYS,
    PAST,
    PLAIN_KEYS,
    SHORT_TTLS,
    SMALL_STEPS,
    roundtrip_values,
    size_limit_values,
    ttls,
)
from ..target import Target
from .base import (
    PROPERTIES,
    Applies,
    Property,
    always,
    approximate_lru,
    atomic_ops,
    bounded,
    declared_order,
    evicting,
    exact_lru,
    expired_first,
    expiring,
    long_ttls_allowed,
    offers_add,
    size_limited,
    unexpiring_entries,
)


# ------------------------------------------------------------------------ stateful checks
def _machine(
    prop_id: str, focus: Callable[[Guarantees], Focus]
) -> Callable[[Target, Guarantees], Check]:
    class_name = "".join(part.title() for part in prop_id.replace(".", "_").split("_"))

    def build(target: Target, g: Guarantees) -> Check:
        return MachineCheck(build_machine(class_name, target, without_add(focus(g), g)))

    return build


def without_add(focus: Focus, g: Guarantees) -> Focus:
    """``focus``, with ``add`` left out where the backend declares add=False (its refusal is
    the backend's word, not something the other properties' programs should trip on)."""
    if g.add:
        return focus
    return replace(focus, rules=tuple(rule for rule in focus.rules if rule is not Rule.ADD))


def _ttls(
    g: Guarantees, *, none: bool = False, pool: tuple[float, ...] = SHORT_TTLS
) -> tuple[float | None, ...]:
    """The TTL arguments a focus writes. A backend without per-entry TTLs gets ``None``
    alone: the cache's one TTL, or no expiry (Guarantees.ttl)."""
    if not g.ttl.per_entry:
        return (None,)
    return ttls(pool, g.max_ttl, none=none)


# Guarantees under which every focus builds, to read what it needs (its rules and pools).
_PROBE = Guarantees(eviction=ExactLRU(8), max_value_size=1024)

# Property id -> the focus it builds from the declared guarantees, for tests that read them.
FOCUSES: dict[str, Callable[[Guarantees], Focus]] = {}


def stateful(
    prop_id: str, promise: str, applies: Applies = always, *, examples: int, cost: float = 0.026
) -> Callable[[Callable[[Guarantees], Focus]], Callable[[Guarantees], Focus]]:
    def register(focus: Callable[[Guarantees], Focus]) -> Callable[[Guarantees], Focus]:
        needs_clock = focus(_PROBE).needs_clock
        FOCUSES[prop_id] = focus
        PROPERTIES.append(
            Property(
                prop_id,
                promise,
                applies,
                _machine(prop_id, focus),
                needs_clock,
                examples,
                cost,
            )
        )
        return focus

    return register


@stateful("ops.get_set", "get returns the value last set; a key never set is a miss", examples=30)
def _get_set(g: Guarantees) -> Focus:
    return Focus(rules=(Rule.SET, Rule.GET))


@stateful(
    "ops.delete", "delete removes the entry, touches no other key, and is idempotent", examples=30
)
def _delete(g: Guarantees) -> Focus:
    return Focus(rules=(Rule.SET, Rule.GET, Rule.DELETE))


@stateful(
    "ops.add",
    "add writes only when no live entry exists (expired counts as absent) and says so",
    offers_add,
    examples=30,
)
def _add(g: Guarantees) -> Focus:
    return Focus(
        rules=(Rule.ADD, Rule.SET, Rule.GET, Rule.DELETE, Rule.ADVANCE_TO_EXPIRY),
        ttls=_ttls(g, none=True),
    )


@stateful(
    "ops.compare_and_set",
    "compare_and_set / compare_and_delete act exactly when the live value matches, and say so",
    atomic_ops,
    examples=30,
)
def _compare_and_set(g: Guarantees) -> Focus:
    return Focus(
        rules=(
            Rule.SET,
            Rule.GET,
            Rule.COMPARE_AND_SET,
            Rule.COMPARE_AND_DELETE,
            Rule.ADVANCE_TO_EXPIRY,
        ),
        keys=FEW_KEYS,
        values=st.sampled_from([b"red", b"green", b""]),
        ttls=_ttls(g, none=True),
    )


@stateful("ops.get_many", "get_many returns exactly the hits, each with its value", examples=40)
def _get_many(g: Guarantees) -> Focus:
    return Focus(rules=(Rule.SET, Rule.DELETE, Rule.GET_MANY))


@stateful("ops.set_many", "set_many stores every item as set would", examples=40)
def _set_many(g: Guarantees) -> Focus:
    return Focus(rules=(Rule.SET_MANY, Rule.GET, Rule.GET_MANY))


@stateful("ops.delete_many", "delete_many removes exactly the keys given", examples=60)
def _delete_many(g: Guarantees) -> Focus:
    return Focus(rules=(Rule.SET, Rule.SET_MANY, Rule.DELETE_MANY, Rule.GET))


@stateful(
    "ops.clear",
    "clear removes every entry of the namespace; declared clear=False, it raises Unsupported "
    "and removes nothing",
    examples=40,
)
def _clear(g: Guarantees) -> Focus:
    return Focus(rules=(Rule.SET, Rule.CLEAR, Rule.GET, Rule.GET_MANY), ttls=_ttls(g, none=True))


@stateful(
    "ttl.lives",
    "an entry with a TTL is served until written_at + ttl, never less",
    expiring,
    # one_ttl_from_first_write took up to 17 examples over 32 seeds (3x, rounded up to 10).
    examples=60,
)
def _ttl_lives(g: Guarantees) -> Focus:
    return Focus(
        rules=(Rule.SET, Rule.ADD, Rule.SET_MANY, Rule.GET, Rule.GET_MANY, Rule.ADVANCE_TO_EXPIRY),
        ttls=_ttls(g),
        offsets=(BEFORE,),
    )


@stateful(
    "ttl.expires",
    "an entry is gone once written_at + ttl (plus the declared resolution) has passed",
    expiring,
    examples=50,
)
def _ttl_expires(g: Guarantees) -> Focus:
    return Focus(
        rules=(
            Rule.SET,
            Rule.SET_MANY,
            Rule.GET,
            Rule.GET_MANY,
            Rule.ADVANCE,
            Rule.ADVANCE_TO_EXPIRY,
        ),
        ttls=_ttls(g),
        offsets=(AT, PAST),
    )


@stateful(
    "ttl.never",
    "an entry written with ttl=None never expires, even over a TTL",
    unexpiring_entries,
    examples=30,
)
def _ttl_never(g: Guarantees) -> Focus:
    # Entries without a TTL are the subject: one draw in three, not one in twelve (with
    # the whole pool, a run of 150 examples sometimes never outlived a day-long default).
    # The TTLs beside it are there to be overwritten by ttl=None, short and long.
    return Focus(
        rules=(Rule.SET, Rule.GET, Rule.ADVANCE),
        keys=FEW_KEYS,
        ttls=_ttls(g, none=True, pool=(1, 86_400)),
        steps=BIG_STEPS,
    )


@stateful(
    "ttl.overwrite",
    "overwriting an entry replaces its TTL (ttl=None removes it)",
    expiring,
    examples=60,
)
def _ttl_overwrite(g: Guarantees) -> Focus:
    return Focus(
        rules=(Rule.SET, Rule.SET_MANY, Rule.GET, Rule.ADVANCE_TO_EXPIRY),
        keys=FEW_KEYS,
        ttls=_ttls(g, none=True),
    )


@stateful(
    "ttl.long",
    "a TTL over 30 days still counts seconds from now (memcached reads it as a date)",
    long_ttls_allowed,
    examples=30,
)
def _ttl_long(g: Guarantees) -> Focus:
    return Focus(
        rules=(Rule.SET, Rule.GET, Rule.ADVANCE, Rule.ADVANCE_TO_EXPIRY),
        ttls=_ttls(g, pool=LONG_TTLS),
        steps=BIG_STEPS,
    )


@stateful(
    "keys.any_unicode",
    "every str is a key: empty, long, whitespace, control, non-ASCII",
    examples=70,
)
def _any_unicode(g: Guarantees) -> Focus:
    return Focus(rules=(Rule.SET, Rule.GET, Rule.DELETE, Rule.GET_MANY), keys=HARD_KEYS)


@stateful("keys.distinct", "two different keys never share an entry", examples=90)
def _distinct(g: Guarantees) -> Focus:
    return Focus(
        rules=(Rule.SET, Rule.GET, Rule.GET_MANY, Rule.DELETE),
        keys=DISTINCT_KEYS,
        key_groups=DISTINCT_KEY_GROUPS,
    )


@stateful("values.roundtrip", "every bytes value reads back exactly as written", examples=40)
def _roundtrip(g: Guarantees) -> Focus:
    return Focus(
        rules=(Rule.SET, Rule.GET, Rule.GET_MANY), values=roundtrip_values(g.max_value_size)
    )


@stateful("values.falsy", "an empty or falsy-looking value is a hit, never a miss", examples=50)
def _falsy(g: Guarantees) -> Focus:
    return Focus(rules=(Rule.SET, Rule.ADD, Rule.GET, Rule.GET_MANY), values=FALSY_VALUES)


@stateful(
    "values.size_limit",
    "a value up to the declared limit is stored; a larger one raises ValueTooLarge and "
    "leaves the old entry",
    size_limited,
    examples=40,
)
def _size_limit(g: Guarantees) -> Focus:
    assert g.max_value_size is not None
    return Focus(
        rules=(Rule.SET, Rule.ADD, Rule.SET_MANY, Rule.GET),
        keys=FEW_KEYS,
        values=size_limit_values(g.max_value_size),
    )


@stateful(
    "lru.capacity", "the cache never holds more live entries than it declares", bounded, examples=30
)
def _capacity(g: Guarantees) -> Focus:
    return Focus(rules=(Rule.SET, Rule.ADD, Rule.GET, Rule.FILL, Rule.SURVIVORS), keys=LRU_KEYS)


@stateful(
    "lru.evicts_lru",
    "a full cache evicts the least recently written entry, never another",
    exact_lru,
    examples=30,
)
def _evicts_lru(g: Guarantees) -> Focus:
    return Focus(rules=(Rule.SET, Rule.FILL), keys=LRU_KEYS, survivors_at_teardown=True)


@stateful(
    "lru.hit_refreshes", "a hit makes the entry the most recently used", exact_lru, examples=40
)
def _hit_refreshes(g: Guarantees) -> Focus:
    return Focus(
        rules=(Rule.SET, Rule.GET, Rule.GET_MANY, Rule.FILL, Rule.GET_OLDEST),
        keys=LRU_KEYS,
        survivors_at_teardown=True,
    )


@stateful(
    "lru.expired_first",
    "expired entries make room before any live entry is evicted, whatever the eviction order",
    expired_first,
    examples=30,
)
def _expired_first(g: Guarantees) -> Focus:
    # fill_expired reaches the state on purpose: a cache full of expired entries, then a
    # write (issue #15). The other rules reach the same rule by other paths.
    return Focus(
        rules=(Rule.SET, Rule.FILL, Rule.FILL_EXPIRED, Rule.ADVANCE, Rule.ADVANCE_TO_EXPIRY),
        keys=LRU_KEYS,
        ttls=_ttls(g, none=True),
        steps=SMALL_STEPS,
        offsets=(PAST,),
        survivors_at_teardown=True,
        avoid_windows=True,
    )


@stateful(
    "lru.declared_order",
    "a full cache evicts the entry its declared order names (FIFO: the first written, whatever "
    "was read since; expiry-ordered: the soonest to expire), never another",
    declared_order,
    examples=30,
)
def _declared_order(g: Guarantees) -> Focus:
    # get_oldest reads the entry written first: under FIFO the next to go, which a hit must
    # not save; TTLs give an expiry order something to order.
    return Focus(
        rules=(Rule.SET, Rule.GET, Rule.FILL, Rule.GET_OLDEST, Rule.ADVANCE_TO_EXPIRY),
        keys=LRU_KEYS,
        ttls=_ttls(g, none=True),
        offsets=(PAST,),
        survivors_at_teardown=True,
        avoid_windows=True,
    )


@stateful(
    "lru.recent_survive",
    "the protected recent entries survive eviction, none comes back once gone, and a write "
    "refused when full leaves no old value (approximate profiles)",
    approximate_lru,
    examples=60,
)
def _recent_survive(g: Guarantees) -> Focus:
    # 64 KiB a fill entry: enough for a few fills to push a server that evicts by memory
    # (the harness's maxmemory of a few MiB) into evicting; an in-process backend counts
    # entries, not bytes, and does not mind.
    return Focus(
        rules=(Rule.SET, Rule.GET, Rule.GET_MANY, Rule.FILL, Rule.SURVIVORS),
        keys=LRU_KEYS,
        fill_bytes=64 * 1024,
    )


@stateful(
    "ops.mixed",
    "any interleaving of every operation, key, value, TTL and clock move agrees with the model",
    examples=70,
    cost=0.037,  # eleven rules: a step costs half as much again as elsewhere
)
def _mixed(g: Guarantees) -> Focus:
    return Focus(
        rules=(
            Rule.SET,
            Rule.GET,
            Rule.ADD,
            Rule.DELETE,
            Rule.GET_MANY,
            Rule.SET_MANY,
            Rule.DELETE_MANY,
            Rule.CLEAR,
            Rule.ADVANCE,
            Rule.ADVANCE_TO_EXPIRY,
            # Not fill_expired: lru.expired_first builds that state on purpose, and in here
            # the extra rule diluted the rest (add_remembers_cleared's worst went from 19
            # to 29 examples over 40 seeds, which would take the budget from 70 to 90).
            *((Rule.FILL,) if evicting(g) is None else ()),
        ),
        keys=PLAIN_KEYS + HARD_KEYS[:6],
        values=st.one_of(FALSY_VALUES, roundtrip_values(g.max_value_size)),
        ttls=_ttls(g, none=True),
        avoid_windows=True,
    )


PROPERTIES.append(
    Property(
        "ops.clear_namespace",
        "clear, set and delete in one namespace never touch another",
        always,
        lambda target, g: MachineCheck(build_namespace_machine("OpsClearNamespace", target)),
        examples=30,
    )
)
