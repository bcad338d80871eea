"""Mutation fuzzing of every file reader (see tests/fuzzing.py): a few hundred cases in subprocesses.

A failure is any exception other than a LyraSimError naming the file, a crash, a hang past the per-case
limit, memory past the worker's address-space limit, or a capture folder that reads (or echoes) a file outside
itself. benchmarks/bench_fuzz.py runs thousands.
"""

from __future__ import annotations

import fuzzing

CASES = {"ply": 50, "native": 30, "usd": 40, "image": 35, "depth": 30, "intrinsics": 20, "camera_path": 20,
         "latent": 30, "splat_formats": 30, "world_info": 20, "capture": 25}


def _failures(reports) -> list[str]:
    return [f"{reader}: {f['outcome']} {f['error']} after '{f['mutation']}': {f['message']}"
            for reader, report in reports.items() for f in report.failures]


def test_every_reader_survives_mutated_files(tmp_path):
    cases = fuzzing.make_cases(tmp_path, CASES, seed=12)
    reports = fuzzing.run_cases(cases)
    assert {reader: r.cases for reader, r in reports.items()} == CASES
    assert not _failures(reports), "\n".join(_failures(reports))
    for reader, report in reports.items():
        assert report.outcomes.get("clean", 0) > 0, f"{reader}: no mutation was refused at all: {report.outcomes}"
        assert report.worst_seconds < fuzzing.CASE_TIMEOUT_S


def test_the_harness_catches_each_kind_of_failure(tmp_path):
    """Readers that misbehave on purpose are reported as failures, and later cases still run (fresh workers)."""
    path = tmp_path / "x.bin"
    path.write_bytes(b"x")
    kinds = {"selftest_exception": "exception", "selftest_unnamed": "unnamed", "selftest_memory": "memory",
             "selftest_timeout": "timeout", "selftest_crash": "crash"}
    cases = [fuzzing.Case(reader, path, "none", 1, timeout=1.0) for reader in kinds]
    reports = fuzzing.run_cases([*cases, fuzzing.Case("intrinsics", path, "none", 1)])
    assert {reader: [f["outcome"] for f in reports[reader].failures] for reader in kinds} == \
        {reader: [outcome] for reader, outcome in kinds.items()}
    assert reports["intrinsics"].outcomes == {"clean": 1}  # "x" is not JSON: a named InputError
