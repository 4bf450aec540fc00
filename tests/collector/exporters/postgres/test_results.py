from dataclasses import fields

from collector.exporters.postgres.results import WriteResult


def test_adding_a_chunk_sums_every_figure_and_keeps_the_earliest_start() -> None:
    total = WriteResult(items=3, inserted=2, repaired=1, quarantined=1, quarantine_reasons=["a"], unchanged=4)
    total.add(WriteResult(earliest_span_us=20))
    total.add(
        WriteResult(items=5, inserted=5, repaired=2, quarantined=3, quarantine_reasons=["b"], unchanged=1,
                    earliest_span_us=10)
    )  # fmt: skip
    total.add(WriteResult(earliest_span_us=None))
    assert total == WriteResult(
        items=8, inserted=7, repaired=3, quarantined=4, quarantine_reasons=["a", "b"], unchanged=5, earliest_span_us=10
    )
    # Every field is one of those figures: a new one must be given a rule here (and add() sums it).
    assert [f.name for f in fields(WriteResult)] == [
        "items", "inserted", "repaired", "quarantined", "quarantine_reasons", "unchanged", "earliest_span_us"
    ]  # fmt: skip
