"""Which properties a guest on a server the user runs must not run: those that clear, over a
backend whose ``clear`` empties the whole store.

On ``redis://host`` or ``memcached://host`` the suite clears only its own namespace
(tenant.py). A backend that declares ``Guarantees(clear_store_wide=True)`` says its ``clear``
empties every namespace of the store: there, a property that clears would wipe the user's
data, so it is "cannot check here", with :data:`STORE_WIDE` as the reason, and the tenant
refuses such a clear outright should anything else ask for one. docs/design.md, "A user's
server keeps only its own data".
"""

from __future__ import annotations

from cachespec.spec import Guarantees

from .focus import Rule
from .properties.base import Property
from .properties.stateful import FOCUSES
from .target import Target, UserServerTarget

STORE_WIDE = (
    "clears, and the backend declares that its clear empties the whole store "
    "(clear_store_wide=True): on a server you run the suite clears only its own namespace, "
    "never the rest of the store (docs/design.md, \"A user's server keeps only its own "
    'data"); check it on a throwaway server the harness starts (`cachespec check redis`, '
    "`memcached`)"
)

# The properties that clear without a focus to say so: two namespaces, each cleared.
CLEARS_WITHOUT_FOCUS = frozenset({"ops.clear_namespace"})


def clears(prop: Property, guarantees: Guarantees) -> bool:
    """Whether ``prop``'s checks call ``clear``."""
    if prop.id in CLEARS_WITHOUT_FOCUS:
        return True
    focus = FOCUSES.get(prop.id)
    return focus is not None and Rule.CLEAR in focus(guarantees).rules


def refusal(prop: Property, target: Target, guarantees: Guarantees) -> str | None:
    """Why ``prop`` must not run on ``target`` as a guest; None when it may."""
    if (
        isinstance(target, UserServerTarget)
        and guarantees.clear
        and guarantees.clear_store_wide
        and clears(prop, guarantees)
    ):
        return STORE_WIDE
    return None
