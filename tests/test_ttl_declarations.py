"""TTL declarations (``Guarantees.ttl``): one TTL for the whole cache, or none at all, is
declared and checked as declared, instead of opted out (issue #15; docs/design.md, "TTL
declarations"). The example caches are in tests/ttl_backends.py; their mutants are in
tests/mutants.py and tests/test_mutants.py rejects them."""

from __future__ import annotations

import pytest
from ttl_backends import NoTTLDict, OneTTLDict

from cachespec.backends import NO_VALUE, Backend
from cachespec.conformance import PROPERTIES, Target, run_suite
from cachespec.conformance.properties.stateful import _PROBE, FOCUSES
from cachespec.conformance.report import header
from cachespec.spec import (
    CacheModel,
    CacheWide,
    ExactLRU,
    Guarantees,
    NoExpiry,
    PerEntry,
    TTLDeclaration,
    Violation,
)

TTL_PROPERTIES = ["ttl.lives", "ttl.expires", "ttl.overwrite", "ttl.never", "ttl.long"]
# The properties the issue saw such caches opt out of, TTL ones aside: they write TTLs.
OPS_WITH_TTLS = ["ops.add", "ops.clear", "ops.mixed"]


def test_the_default_is_per_entry_and_the_header_is_unchanged() -> None:
    assert Guarantees().ttl == PerEntry()
    assert Guarantees().describe().startswith("exact TTLs; ")
    assert Guarantees(ttl_resolution=0.002).describe().startswith("TTL resolution 0.002s; ")


@pytest.mark.parametrize(
    ("guarantees", "words"),
    [
        (Guarantees(ttl=CacheWide(60)), "one TTL for the whole cache (60s), exact; "),
        (
            Guarantees(ttl=CacheWide(1.5), ttl_resolution=1),
            "one TTL for the whole cache (1.5s), resolution 1s; ",
        ),
        (Guarantees(ttl=NoExpiry()), "no expiry; "),
    ],
)
def test_the_header_says_what_is_declared(guarantees: Guarantees, words: str) -> None:
    assert guarantees.describe().startswith(words)
    assert "exact TTLs" not in guarantees.describe()


def test_a_run_header_names_the_declaration() -> None:
    report = run_suite(Target("ttl:one", OneTTLDict), seed=1, only=["ops.get_set"])
    assert "guarantees: one TTL for the whole cache (1.5s), exact;" in header(report, 1.0, 1)


@pytest.mark.parametrize(
    ("seconds", "error"),
    [(0, ValueError), (-1, ValueError), (float("nan"), ValueError), ("60", TypeError)],
)
def test_a_bad_cache_wide_ttl_is_refused(seconds: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="ttl must be"):
        CacheWide(seconds)  # type: ignore[arg-type]


@pytest.mark.parametrize("declared", [60, None, "per-entry", PerEntry])
def test_a_declaration_that_is_not_one_is_refused(declared: object) -> None:
    with pytest.raises(TypeError, match=r"ttl must be PerEntry\(\), CacheWide\(seconds\)"):
        Guarantees(ttl=declared)  # type: ignore[arg-type]


def test_under_one_ttl_every_write_lives_that_long_and_an_overwrite_restarts_it() -> None:
    m = CacheModel(Guarantees(ttl=CacheWide(2)), origin=0.0)
    m.set(0.0, "a", b"1", None)
    m.set(1.0, "b", b"2", 3600)  # the argument is the backend's to ignore: the cache's TTL wins
    m.get(1.9, "a", b"1")
    with pytest.raises(Violation, match=r"allowed only a miss: 'a' expired at t=2.0"):
        m.get(2.0, "a", b"1")
    m.set(2.5, "b", b"3", None)  # the overwrite restarts the TTL
    with pytest.raises(Violation, match=r"allowed only b'3'.*ttl=2.0, live until t=4.5"):
        m.get(4.0, "b", NO_VALUE)


def test_with_no_expiry_no_entry_ever_expires() -> None:
    m = CacheModel(Guarantees(ttl=NoExpiry()), origin=0.0)
    m.set(0.0, "a", b"1", 5)
    with pytest.raises(Violation, match="with no TTL"):
        m.get(10**9, "a", NO_VALUE)


# (declaration, the TTL properties that apply to it)
APPLICABLE: list[tuple[TTLDeclaration, set[str]]] = [
    (PerEntry(), set(TTL_PROPERTIES)),
    (CacheWide(60), {"ttl.lives", "ttl.expires", "ttl.overwrite"}),
    (NoExpiry(), {"ttl.never"}),
]


@pytest.mark.parametrize(("declared", "applies"), APPLICABLE)
def test_the_ttl_properties_apply_as_declared(declared: TTLDeclaration, applies: set[str]) -> None:
    g = Guarantees(ttl=declared, eviction=ExactLRU(8))
    by_id = {p.id: p.applies(g) for p in PROPERTIES}
    assert {p for p in TTL_PROPERTIES if by_id[p] is None} == applies
    for prop in set(TTL_PROPERTIES) - applies:
        assert declared.describe() in str(by_id[prop])
    assert all(by_id[p] is None for p in OPS_WITH_TTLS)
    assert (by_id["lru.expired_first"] is None) is declared.expires


@pytest.mark.parametrize("declared", [CacheWide(60), NoExpiry()])
def test_without_per_entry_ttls_every_machine_writes_ttl_none(declared: TTLDeclaration) -> None:
    g = Guarantees(ttl=declared, eviction=_PROBE.eviction, max_value_size=1024)
    built = [focus(g) for focus in FOCUSES.values()]
    assert built
    assert {t for focus in built for t in focus.ttls} == {None}


@pytest.mark.parametrize(
    ("factory", "skipped"),
    [
        (OneTTLDict, {"ttl.never", "ttl.long"}),
        (NoTTLDict, {"ttl.lives", "ttl.expires", "ttl.overwrite", "ttl.long"}),
    ],
    ids=["one_ttl", "no_ttl"],
)
def test_a_cache_that_keeps_its_declaration_passes(
    factory: type[Backend], skipped: set[str]
) -> None:
    only = TTL_PROPERTIES + OPS_WITH_TTLS
    report = run_suite(Target(f"ttl:{factory.__name__}", factory), seed=20261127, only=only)
    statuses = {prop: report.result(prop).status for prop in only}
    assert statuses == {p: "skip" if p in skipped else "pass" for p in only}, report.results
    assert report.passed
