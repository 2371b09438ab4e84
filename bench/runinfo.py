"""What every benchmark prints first: the command that produced its figures, and where."""

from __future__ import annotations

import argparse
import platform
import shlex
import sys


def quick_option(description: str) -> bool:
    """Parse the one option every benchmark takes: ``--quick`` (fewer calls and repeats)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats")
    quick: bool = parser.parse_args().quick
    return quick


def print_header(*lines: str) -> None:
    """The command, the interpreter and the machine, then ``lines`` and a blank line."""
    print(f"command: {shlex.join(['python', *sys.argv])}")
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    print(f"machine: {platform.platform()}, {platform.machine()}")
    for line in lines:
        print(line)
    print()
