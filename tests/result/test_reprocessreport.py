"""result.reprocessreport: what a reprocess says when it ends, however many jobs it did."""

from __future__ import annotations

from result.reprocessreport import NAMED_MAX, Named, Report


def named(*names: str) -> Named:
    found = Named()
    for name in names:
        found.add(name)
    return found


def test_the_summary_names_the_jobs_rewritten_and_skipped() -> None:
    few = Report(jobs=3, shots=6, jobs_rewritten=named("a", "b"), jobs_skipped=["c"])
    few.workers.update({"host:2", "host:1"})
    assert few.summary("v@1") == [
        "reprocessed 6 shot(s) of 3 job(s) with v@1",
        "analysed by: host:1, host:2",
        "a: CSVs and result rewritten",
        "b: CSVs and result rewritten",
        "c: skipped, not finished (reprocess it once it has ended)",
    ]


def test_a_year_of_jobs_rewritten_is_named_twenty_and_counted_not_kept() -> None:
    year = Report(jobs=100_000, skipped=7)
    for n in range(100_000):
        year.jobs_rewritten.add(f"j{n}")
    assert year.jobs_rewritten.count == 100_000
    assert year.jobs_rewritten.first == [f"j{n}" for n in range(NAMED_MAX)]
    lines = year.summary("v@1")
    assert (
        lines[0]
        == "reprocessed 0 shot(s) of 100000 job(s) with v@1; 7 carried that version already"
    )
    assert len(lines) == 1 + NAMED_MAX + 1
    assert lines[-1] == f"... and {100_000 - NAMED_MAX} more jobs' CSVs and results rewritten"
