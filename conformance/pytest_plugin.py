"""The pytest plugin (registered through the ``pytest11`` entry point).

    pytest --pyargs cachespec.conformance.suite --cachespec-backend 'memory://?capacity=64'

runs every property as a test. The options also feed :func:`conformance_tests` classes
that were given no backend of their own.
"""

from __future__ import annotations

import pytest

from .runner import SIZES


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cachespec", "cachespec conformance suite")
    group.addoption(
        "--cachespec-backend",
        dest="cachespec_backend",
        metavar="BACKEND",
        help="backend URL or module:callable for cachespec's conformance tests",
    )
    group.addoption(
        "--cachespec-size",
        dest="cachespec_size",
        choices=list(SIZES),
        help="conformance run size (default: default)",
    )
    group.addoption(
        "--cachespec-seed",
        dest="cachespec_seed",
        type=int,
        help="seed for the conformance properties, to reproduce a run",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("cachespec_backend", None) is not None:
        return
    if any(getattr(getattr(item, "cls", None), "cachespec_needs_option", False) for item in items):
        raise pytest.UsageError(
            "cachespec: no backend to check; pass --cachespec-backend URL "
            "(for example memory://?capacity=64) or give conformance_tests() a backend"
        )
