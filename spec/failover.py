"""What a backend promises when a node fails and another takes its place.

A backend of several nodes declares how a node's failure reaches its callers
(:attr:`~cachespec.spec.Guarantees.failover`). Each declaration names the fault properties
that check it (``checked_by``): ``faults.cluster_*`` on a cluster the harness started,
``faults.ring_*`` on a ring it started (docs/design.md, "Failover", "The memcached ring").
A backend of one server declares none, and those properties do not apply to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class AsyncReplicaFailover:
    """Each node's data is copied to a replica asynchronously, and a replica replaces a node
    that fails (Redis Cluster).

    A write the failed node acknowledged but had not yet sent to its replica is lost:
    after the failover a read may return the value the key held before that write, or a
    miss. That is all that may happen. A read never returns a value that was never written
    under its key (not another key's, not one made up), no call waits past its timeout, and
    once the safety TTL (the fill TTL) has passed since the failover, every read is as fresh
    as the staleness bounds say, as if no write had been lost.
    """

    checked_by: ClassVar[str] = "faults.cluster_"

    def describe(self) -> str:
        return "failover to asynchronous replicas (a write acknowledged just before it may be lost)"


@dataclass(frozen=True)
class RingRemap:
    """Keys are spread over nodes by the client; a node that fails is dropped from the
    ring and its keys go to the others (memcached behind a hashing client).

    Whenever the ring changes (a node dropped, a node back), the namespace is emptied
    before the next call, so an entry written before the change is never read after it:
    not from a returning node that kept its old entries, nor from a stand-in. Beyond that,
    the promises are one server's: no value under another key, no call past its timeout,
    the staleness bounds.
    """

    checked_by: ClassVar[str] = "faults.ring_"

    def describe(self) -> str:
        return (
            "a ring: a failed node's keys go to the others, and any change of the ring "
            "empties the namespace"
        )


#: What a backend of several nodes may declare.
Failover = AsyncReplicaFailover | RingRemap


def declared_for(prefix: str, failover: Failover | None) -> str | None:
    """None when ``failover`` is checked by the fault properties named ``prefix*``; else
    why they do not apply (a property's ``applies``)."""
    if failover is not None and failover.checked_by == prefix:
        return None
    declared = "no failover (one server)" if failover is None else failover.describe()
    return f"the backend declares {declared} (Guarantees.failover); {prefix}* check another kind"
