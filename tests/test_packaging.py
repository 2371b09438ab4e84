"""The wheel installs one import name, ``cachespec``, with the three parts beneath it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_the_wheel_holds_only_the_cachespec_package(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("cachespec-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.startswith("cachespec-")}
    assert top == {"cachespec"}, top
    for module in (
        "cachespec/py.typed",
        "cachespec/spec/model.py",
        "cachespec/backends/memory.py",
        "cachespec/conformance/runner.py",
        "cachespec/conformance/suite.py",
        "cachespec/conformance/properties/strategies.py",
        "cachespec/conformance/servers/registry.py",
    ):
        assert module in names
    assert not any(name.startswith(("cachespec/tests", "tests/", "bench/")) for name in names)
    entry_points = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith("entry_points.txt")))
        .decode()
    )
    assert "cachespec = cachespec.conformance.cli:main" in entry_points
    assert "cachespec = cachespec.conformance.pytest_plugin" in entry_points


def test_the_suite_runs_on_memory_without_any_driver_installed() -> None:
    """`pip install cachespec` alone checks memory://: no module may import redis-py,
    pymemcache, fakeredis or OpenTelemetry at import time (a cluster module once did, and
    the README's first command failed)."""
    script = textwrap.dedent(
        """
        import importlib.abc, sys

        class NoDrivers(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"redis", "pymemcache", "fakeredis", "opentelemetry"}:
                    raise ModuleNotFoundError(f"No module named {name!r}")
                return None

        sys.meta_path.insert(0, NoDrivers())
        import cachespec, cachespec.backends, cachespec.conformance
        from cachespec.conformance import run_suite
        report = run_suite("memory://", seed=1, size="quick", only=["ops.get_set", "faults.*"])
        assert report.passed, report.results
        print("ok", len(report.results))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok ")
