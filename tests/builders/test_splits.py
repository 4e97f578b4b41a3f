import pytest

from qsm_eval.builders.errors import BuildError
from qsm_eval.builders.splits import assign_splits, largest_remainder, parse_splits


def test_parse_splits_reads_names_and_fractions():
    assert parse_splits(["dev=0.25", "test=0.75"]) == (("dev", 0.25), ("test", 0.75))
    assert parse_splits(["test"]) == (("test", 1.0),)


@pytest.mark.parametrize("specs, message", [
    (["dev=0.5", "test=0.4"], "sum to 0.9"),
    (["dev=x", "test=1"], "must be a number"),
    (["dev=0.5", "dev=0.5"], "given twice"),
    (["=1"], "name=fraction"),
])
def test_parse_splits_refuses_bad_specs(specs, message):
    with pytest.raises(BuildError, match=message):
        parse_splits(specs)


def test_largest_remainder_sums_exactly():
    assert largest_remainder(10, [1, 1, 1]) == [4, 3, 3]
    assert largest_remainder(7, [0.8, 0.2]) == [6, 1]
    assert sum(largest_remainder(101, [0.3, 0.3, 0.4])) == 101


def test_assign_splits_is_by_source_proportional_and_seeded():
    sources = [f"rec{i}" for i in range(10)] * 3   # repeated ids: one recording, one split
    splits = parse_splits(["dev=0.3", "test=0.7"])
    assignment = assign_splits(sources, splits, seed=5)
    assert set(assignment) == set(sources)
    assert sorted(assignment.values()).count("dev") == 3
    assert assignment == assign_splits(list(reversed(sources)), splits, seed=5)
    assert any(assign_splits(sources, splits, seed=s) != assignment for s in range(6, 10))


def test_assign_splits_refuses_more_splits_than_recordings():
    with pytest.raises(BuildError, match="too few"):
        assign_splits(["a"], parse_splits(["dev=0.5", "test=0.5"]), seed=0)
