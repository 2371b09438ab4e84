"""The wheel installs one import name, ``cachespec``, with the three parts beneath it."""

from __future__ import annotations

import subprocess
import sys
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
