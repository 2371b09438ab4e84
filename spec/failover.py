"""What a backend promises when a node fails and another takes its place.

A backend of several nodes declares how a node's failure reaches its callers
(:attr:`~cachespec.spec.Guarantees.failover`). The suite's ``faults.cluster_*`` properties
check a declaration on a cluster the harness started (docs/design.md, "Failover").
"""

from __future__ import annotations

from dataclasses import dataclass


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

    def describe(self) -> str:
        return "failover to asynchronous replicas (a write acknowledged just before it may be lost)"
