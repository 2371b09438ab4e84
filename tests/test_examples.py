"""The flash-sale example runs, and every strategy stays within its bound but the naive one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parent.parent / "examples" / "flash_sale.py"


def test_the_flash_sale_measures_each_strategy_within_its_bound() -> None:
    run = subprocess.run(
        [sys.executable, str(EXAMPLE), "--backend", "memory"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    worst = {
        name.strip(): int(seconds)
        for name, seconds in re.findall(r"^\| ([^|]+) \| (\d+) s \|", run.stdout, re.MULTILINE)
    }
    assert worst["explicit invalidation"] == 0
    assert worst["write-through"] == 0
    assert worst["guarded cache-aside, racing"] == 0
    assert worst["event invalidation"] <= 3
    assert 0 < worst["TTL only"] <= 600
    assert worst["naive cache-aside, racing"] > 3  # the stale-set race, measured
