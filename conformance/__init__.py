"""The conformance suite: state machines, the runner, the report, the pytest kit.

Third parties check their own backend with::

    from cachespec.conformance import run_suite
    report = run_suite("mypkg.cache:make_backend")   # or a URL
    assert report.passed, report.failed()

or, in pytest, with :func:`conformance_tests` (see :mod:`cachespec.conformance.kit`).
"""

from .clock import HarnessClock, ManualClock
from .clockpatch import follow_clock
from .kit import conformance_tests
from .properties import PROPERTIES, Property
from .runner import SIZES, Budget, Report, Result, run_suite
from .target import Session, Target, TargetError, resolve_target

__all__ = [
    "PROPERTIES",
    "SIZES",
    "Budget",
    "HarnessClock",
    "ManualClock",
    "Property",
    "Report",
    "Result",
    "Session",
    "Target",
    "TargetError",
    "conformance_tests",
    "follow_clock",
    "resolve_target",
    "run_suite",
]
