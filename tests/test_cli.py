"""``cachespec check`` as a user runs it: exit codes, the table, JSON and JUnit reports."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cachespec.backends import MemoryBackend
from cachespec.conformance import PROPERTIES, Target, run_suite
from cachespec.conformance.report import ID_WIDTH, guarantee_table

TESTS = Path(__file__).parent


def cachespec(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run(
        [sys.executable, "-m", "cachespec", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
        check=False,
    )


def test_a_passing_run_exits_0_and_writes_both_reports(tmp_path: Path) -> None:
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    run = cachespec(
        "check",
        "memory://?capacity=8",
        "--size",
        "quick",
        "--seed",
        "7",
        "--only",
        "ops.*",
        "values.size_limit",
        "--report",
        str(report),
        "--junit",
        str(junit),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "[ 1/" in run.stderr  # progress while it runs
    # values.size_limit, ops.clear_namespace, ops.add_refused (memory:// offers add)
    assert "passed, 0 failed, 3 skipped" in run.stdout

    data = json.loads(report.read_text())
    assert set(data) >= {"backend", "passed", "seed", "seconds", "properties"}
    assert (data["backend"], data["passed"], data["seed"]) == ("memory://?capacity=8", True, 7)
    assert isinstance(data["seconds"], float)
    statuses = {p["id"]: p["status"] for p in data["properties"]}
    assert statuses["values.size_limit"] == "skip"
    # memory:// makes a store per namespace: no two of one store to compare.
    assert statuses["ops.clear_namespace"] == "skip"
    assert statuses["ops.add_refused"] == "skip"
    assert all(
        s == "pass"
        for pid, s in statuses.items()
        if pid.startswith("ops.") and pid not in ("ops.clear_namespace", "ops.add_refused")
    )
    for prop in data["properties"]:
        assert set(prop) >= {"id", "status", "reason", "counterexample"}
        assert prop["status"] in ("pass", "fail", "skip")
    skipped = next(p for p in data["properties"] if p["id"] == "values.size_limit")
    assert "no value size limit" in skipped["reason"]
    assert skipped["skip"] == "not declared"
    assert data["checked"] == len(statuses) - 3
    checked = f"checked {len(statuses) - 3} of {len(statuses)}"
    assert f"{checked} (1 not applicable; 2 not declared)" in run.stdout

    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "0"
    assert suite.get("skipped") == "3"
    assert len(suite.findall("testcase")) == len(statuses)


def test_a_violation_exits_1_names_the_property_and_prints_a_program(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    run = cachespec(
        "check", "mutants:LateExpiry", "--seed", "3", "--only", "ttl.e*", "--report", str(report)
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert re.search(r"^ttl\.expires +FAIL ", run.stdout, re.MULTILINE)
    assert "state = replay('mutants:LateExpiry', 'ttl.expires')" in run.stdout
    assert (
        "reproduce with: cachespec check mutants:LateExpiry --seed 3 --only 'ttl.e*'" in run.stdout
    )
    data = json.loads(report.read_text())
    assert data["passed"] is False
    failed = {p["id"]: p for p in data["properties"] if p["status"] == "fail"}
    assert "ttl.expires" in failed
    assert "the model allowed only a miss" in failed["ttl.expires"]["reason"]
    assert failed["ttl.expires"]["counterexample"].startswith("from cachespec.conformance.replay")


def test_the_header_comes_before_the_first_property() -> None:
    run = cachespec("check", "--size", "quick", "--seed", "2", "--only", "ops.get_set", "ttl.*")
    assert run.returncode == 0, run.stdout + run.stderr
    head, _, rest = run.stderr.partition("[1/")
    assert head.startswith("cachespec check memory://\n  guarantees: exact TTLs")
    assert re.search(r"size quick, seed 2, \d+ process(es)?, expected about \d+ (s|min)", head)
    assert "ops.get_set" in rest


def test_the_reproduce_line_carries_every_option_that_changes_the_run() -> None:
    args = ["check", "--strategy", "naive-cache-aside", "--only", "staleness.cache_aside"]
    first = cachespec(*args, "--seed", "1")
    assert first.returncode == 1, first.stdout + first.stderr
    line = first.stdout.rsplit("reproduce with: ", 1)[1].strip()
    assert line == (
        "cachespec check memory:// --seed 1 --strategy naive-cache-aside "
        "--only staleness.cache_aside"
    )
    # Run as printed, it fails the same way (it used to drop --strategy, and pass).
    again = cachespec(*shlex.split(line)[1:])
    assert again.returncode == 1, again.stdout + again.stderr
    assert "stale-set race" in again.stdout


@pytest.mark.parametrize(("jobs", "sig"), [("2", signal.SIGINT), ("1", signal.SIGTERM)])
def test_a_stopped_run_prints_what_finished_and_writes_the_reports(
    tmp_path: Path, jobs: str, sig: signal.Signals
) -> None:
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    args = ["check", "--seed", "3", "--size", "quick", "--jobs", jobs]
    args += ["--report", str(report), "--junit", str(junit)]
    # As from a terminal: a child of a shell without job control (a CI script run with `&`)
    # inherits SIGINT ignored, and Python then leaves it ignored.
    script = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from cachespec.conformance.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as check:
        assert check.stderr is not None
        # A bounded wait for the first property to pass (one that does not apply here ends
        # at once, and may be the first to end): the run is then well under way.
        for line in check.stderr:
            if re.match(r"\[\s*\d+/\d+\] \S+\s+pass ", line):
                break
        check.send_signal(sig)
        stdout, _ = check.communicate(timeout=120)
    assert check.returncode == 128 + sig, stdout
    assert report.exists(), stdout  # the table of what finished is printed, then written
    data = json.loads(report.read_text())
    assert data["interrupted"] == sig.name
    assert data["passed"] is False
    statuses = [p["status"] for p in data["properties"]]
    assert len(statuses) == len(PROPERTIES)
    assert "interrupted" in statuses
    assert "pass" in statuses  # what finished is kept
    assert "interrupted" in stdout
    assert "run again with: cachespec check memory:// --seed 3 --size quick" in stdout
    suite = ET.parse(junit).getroot()
    assert suite.get("errors") == str(statuses.count("interrupted"))


def test_no_hypothesis_folder_is_left_where_the_check_runs(tmp_path: Path) -> None:
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "HYPOTHESIS_STORAGE_DIRECTORY"}
    run = subprocess.run(
        [sys.executable, "-m", "cachespec", "check", "--size", "quick", "--only", "keys.*"],
        capture_output=True,
        text=True,
        env={**env, "XDG_CACHE_HOME": str(cache)},
        cwd=work,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert list(work.iterdir()) == []


def test_the_same_seed_gives_the_same_counterexample() -> None:
    first = cachespec("check", "mutants:EvictsNewest", "--seed", "5", "--only", "lru.evicts_lru")
    again = cachespec("check", "mutants:EvictsNewest", "--seed", "5", "--only", "lru.evicts_lru")
    assert first.returncode == again.returncode == 1
    program = first.stdout[first.stdout.index("counterexample") : first.stdout.index("reproduce")]
    assert program in again.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "nosuch://x"], "no backend for scheme 'nosuch'"),
        (["check", "memory://?capacity=zero"], "not a whole number"),
        (["check", "no_such_module:make"], "cannot load 'no_such_module:make'"),
        (["check", "justaword"], "not a backend"),
        (["check", "--only", "nothing.*"], "no property matches"),
        (["check", "redis://:hunter2@127.0.0.1:1/0?bogus=1"], "redis://:***@127.0.0.1:1/0"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    run = cachespec(*args)
    assert run.returncode == 2, run.stdout + run.stderr
    assert message in run.stderr
    assert "hunter2" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_argparse_errors_exit_2() -> None:
    assert cachespec("check", "--size", "huge").returncode == 2
    assert cachespec().returncode == 2


def test_list_shows_every_property() -> None:
    run = cachespec("list")
    assert run.returncode == 0
    for prop in PROPERTIES:
        assert prop.id in run.stdout


def test_a_reader_that_stops_early_is_not_an_error() -> None:
    # `cachespec list | head -0`: the reader is gone before the first line is written (we
    # close our end at once; the interpreter takes far longer to start). No traceback, exit 0.
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    with subprocess.Popen(
        [sys.executable, "-m", "cachespec", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as lister:
        assert lister.stdout is not None
        lister.stdout.close()
        assert lister.stderr is not None
        errors = lister.stderr.read()
        lister.wait(timeout=60)
    assert errors == b""
    assert lister.returncode == 0


def test_every_property_id_fits_the_table_column() -> None:
    assert max(len(p.id) for p in PROPERTIES) < ID_WIDTH


def test_the_guarantee_table_marks_what_a_narrower_run_left_out() -> None:
    full = {
        "backend": "redis",
        "seed": 1,
        "size": "default",
        "properties": [
            {"id": "lru.capacity", "status": "skip"},
            {"id": "ttl.lives", "status": "pass"},
        ],
    }
    narrow = {
        "backend": "redis?eviction=server",
        "seed": 2,
        "size": "default",
        "properties": [{"id": "lru.capacity", "status": "fail"}],
    }
    text = guarantee_table([full, narrow])
    assert "| `lru.capacity` | skip | **FAIL** |" in text
    assert "| `ttl.lives` | pass | - |" in text
    assert "- = not run" in text
    assert "- = not run" not in guarantee_table([full])


def test_what_a_target_cannot_check_is_told_apart_and_fails_under_require_all() -> None:
    """A backend built by a factory object lives in this process, as far as the check can
    tell, though it may talk to a server: single_flight.processes cannot run on it. That is
    the check's limit, not the backend's declaration, and the report says so."""
    only = ["single_flight.processes", "values.size_limit", "ops.get_set"]
    target = Target("mine", lambda clock: MemoryBackend(8, clock=clock))
    lenient = run_suite(target, size="quick", seed=1, only=only)
    assert lenient.passed
    assert [r.skip for r in lenient.results] == ["", "cannot check here", "not declared"]
    table = guarantee_table([lenient.to_json()])
    assert "| `single_flight.processes` | n/c |" in table
    assert "| `values.size_limit` | skip |" in table
    assert "n/c = cannot be checked on this target" in table
    target = Target("mine", lambda clock: MemoryBackend(8, clock=clock))
    strict = run_suite(target, size="quick", seed=1, only=only, require_all=True)
    assert not strict.passed
    refused = strict.result("single_flight.processes")
    assert refused.status == "fail"
    assert refused.reason.startswith("--require-all, and this target cannot check it: ")
    assert strict.result("values.size_limit").status == "skip"  # declared: still a skip


def test_what_does_not_apply_to_a_backend_passes_under_require_all() -> None:
    """memory:// lives in this process, whatever the target: no server to kill and nothing
    other processes can reach. Those properties do not apply to it ("n/a"), and
    --require-all, which fails the check's own limits, does not fail them."""
    only = ["single_flight.processes", "faults.server_calls", "ops.clear_namespace", "ops.get_set"]
    strict = run_suite("memory://", size="quick", seed=1, only=only, require_all=True)
    assert strict.passed
    assert {r.id: r.skip for r in strict.results} == {
        "ops.get_set": "",
        "faults.server_calls": "not applicable",
        "single_flight.processes": "not applicable",
        # every memory:// open is a store of its own: no two namespaces share one
        "ops.clear_namespace": "not applicable",
    }
    assert "there is no server to kill" in strict.result("faults.server_calls").reason
    assert "a store of its own" in strict.result("ops.clear_namespace").reason
    assert strict.reproduce().endswith(
        "--require-all --only single_flight.processes faults.server_calls "
        "ops.clear_namespace ops.get_set"
    )
    table = guarantee_table([strict.to_json()])
    assert "| `single_flight.processes` | n/a |" in table
    assert "n/a = does not apply to this backend" in table
    assert "n/c" not in table


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("fakeredis://", "fakeredis", "fakeredis"),
        ("memcached://127.0.0.1:1", "pymemcache", "memcached"),
    ],
)
def test_a_missing_driver_is_a_usage_error_naming_the_extra(
    url: str, module: str, extra: str
) -> None:
    # As after a bare `pip install cachespec`: the driver cannot be imported.
    script = (
        f"import sys; sys.modules[{module!r}] = None; "
        "from cachespec.conformance.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, "check", url, "--only", "ops.get_set"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    assert f"pip install 'cachespec[{extra}]'" in run.stderr
    assert "Traceback" not in run.stderr


def test_version_and_help_name_what_a_newcomer_needs() -> None:
    version = cachespec("--version")
    assert version.returncode == 0
    assert re.fullmatch(r"cachespec \d+\.\d+\.\d+\n", version.stdout), version.stdout
    helped = cachespec("check", "--help")
    text = " ".join(helped.stdout.split())
    assert "(redis, memcached," in text  # the bare names of the servers the harness starts
    assert "exit status: 0 every promised property holds; 1 a violation; 2 a usage" in text
