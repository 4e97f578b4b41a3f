"""Source-disjoint splits: whole recordings go to one split, never single rows."""

from __future__ import annotations

from qsm_eval.builders.errors import BuildError
from qsm_eval.seeding import stable_seed


def parse_splits(specs: list[str]) -> tuple[tuple[str, float], ...]:
    """``["train=0.8", "test=0.2"]`` -> (("train", 0.8), ("test", 0.2)); fractions sum to 1.

    A bare name (``test``) means the whole set.
    """
    splits = []
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        try:
            fraction = float(value) if sep else 1.0
        except ValueError:
            raise BuildError(f"--splits {spec!r}: the fraction must be a number (name=0.2)") from None
        if not name or not 0 < fraction <= 1:
            raise BuildError(f"--splits {spec!r}: use name=fraction with 0 < fraction <= 1")
        if any(name == seen for seen, _ in splits):
            raise BuildError(f"--splits: split {name!r} is given twice")
        splits.append((name, fraction))
    total = sum(f for _, f in splits)
    if not splits or abs(total - 1.0) > 1e-6:
        raise BuildError(f"--splits {' '.join(specs)}: the fractions sum to {total:g}, not 1")
    return tuple(splits)


def largest_remainder(total: int, weights: list[float]) -> list[int]:
    """Integer shares of ``total`` in proportion to ``weights``, summing exactly to ``total``."""
    scale = sum(weights)
    exact = [total * w / scale for w in weights]
    shares = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    return shares


def assign_splits(source_ids, splits: tuple[tuple[str, float], ...], seed: object) -> dict[str, str]:
    """Map each source to a split: sources in a seeded order, cut in proportion to the
    fractions, so a split gets its share of recordings (not of rows) and every split at
    least one recording."""
    ordered = sorted(set(source_ids), key=lambda s: (stable_seed(seed, "split", s), s))
    shares = largest_remainder(len(ordered), [f for _, f in splits])
    empty = [name for (name, _), n in zip(splits, shares) if n == 0]
    if empty:
        raise BuildError(f"--splits: {len(ordered)} recording(s) with usable regions are too few "
                         f"to give split(s) {', '.join(empty)} a recording of their own; "
                         "use fewer splits or more recordings")
    assignment, cursor = {}, 0
    for (name, _), n in zip(splits, shares):
        for source_id in ordered[cursor:cursor + n]:
            assignment[source_id] = name
        cursor += n
    return assignment
