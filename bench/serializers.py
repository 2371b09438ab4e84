"""What the default serializer costs a fill (``dumps``) and a hit (``loads``).

    python bench/serializers.py [--quick]

Each cell is the median of several ``timeit`` repeats, in ns per call, of
``JSONSerializer().dumps(value)`` and ``.loads(payload)`` on a few typical values, beside
bare ``json.dumps``/``json.loads`` of the same value measured alternately in the same
process: the ratio is what carries between machines (bench/README.md). A value the
serializer refuses is reported as refused. The script measures and reports; it never fails.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import timeit
from collections.abc import Callable
from datetime import date, datetime, timezone
from decimal import Decimal

from cachespec.backends.serializers import JSONSerializer

ROW = {"id": 12345, "name": "widget", "price": 19.99, "tags": ["a", "b"], "ok": True, "x": None}
VALUES: dict[str, object] = {
    "a row (str-keyed dict, 6 fields)": ROW,
    "a page (list of 20 rows)": [dict(ROW, id=i) for i in range(20)],
    "a short str": "hello, world",
    "1 KiB of bytes (top level)": bytes(range(256)) * 4,
    "a typed row (Decimal, date, datetime, tuple)": {
        "id": 12345,
        "price": Decimal("19.99"),
        "day": date(2026, 1, 1),
        "at": datetime(2026, 1, 1, 12, 30, tzinfo=timezone.utc),
        "size": (3, 4),
    },
    "an int-keyed dict (10 keys)": {i: f"v{i}" for i in range(10)},
}


def per_call_ns(call: Callable[[], object], repeats: int) -> float:
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    return statistics.median(t / number * 1e9 for t in timer.repeat(repeats, number))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 9")
    repeats = 3 if parser.parse_args().quick else 9
    print(f"$ python {' '.join(sys.argv)}")
    print(f"Python {platform.python_version()} on {platform.machine()}, {platform.system()}\n")
    print("| value | dumps ns | json.dumps ns | ratio | loads ns | json.loads ns | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    serializer = JSONSerializer()
    for name, value in VALUES.items():
        try:
            payload = serializer.dumps(value)
        except TypeError as exc:
            print(f"| {name} | refused: {type(exc).__name__} | | | | | |")
            continue
        text = json.dumps(value if not isinstance(value, bytes) else value.hex(), default=str)
        dumps = per_call_ns(functools.partial(serializer.dumps, value), repeats)
        bare_dumps = per_call_ns(functools.partial(json.dumps, value, default=str), repeats)
        loads = per_call_ns(functools.partial(serializer.loads, payload), repeats)
        bare_loads = per_call_ns(functools.partial(json.loads, text), repeats)
        print(
            f"| {name} | {dumps:,.0f} | {bare_dumps:,.0f} | {dumps / bare_dumps:.2f} "
            f"| {loads:,.0f} | {bare_loads:,.0f} | {loads / bare_loads:.2f} |"
        )


if __name__ == "__main__":
    main()
