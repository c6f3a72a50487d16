"""The second stage's discount of the direction all listings share (``ranking.shared_direction``,
``VectorIndex.mean``): what it changes in a ranking, and that the mean follows the index."""

from __future__ import annotations

import numpy as np

from athkit.registry import ranking
from athkit.registry.vectors import VectorIndex


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_a_listing_close_only_through_the_shared_direction_loses() -> None:
    """A crowd of listings shares one direction (as templated or same-domain listings do). A
    lure is close to the intent mostly through that direction; the right listing is close
    through what the intent itself asks. Plain cosines rank the lure first; the second stage,
    discounting the index's mean, ranks the right listing first."""
    rng = np.random.default_rng(11)
    ndim = 64
    shared, asked = np.eye(ndim)[0], np.eye(ndim)[1]
    index = VectorIndex(ndim=ndim, dtype="f32")
    crowd = _unit(shared + 0.05 * rng.normal(size=(2000, ndim))).astype(np.float32)
    index.add((100 + i, crowd[i : i + 1]) for i in range(len(crowd)))
    query = _unit(shared + 0.6 * asked).astype(np.float32)
    lure = _unit(shared + 0.3 * asked).astype(np.float32)[None]
    right = _unit(0.8 * shared + asked).astype(np.float32)[None]
    index.add([(1, lure), (2, right)])

    plain = ranking.rescore(query, [1, 2], index.vectors_of([1, 2]), 0.5)
    assert [i for i, _ in plain] == [1, 2]
    center = ranking.shared_direction(index.mean(), index.vector_count, 0.75)
    assert center is not None
    discounted = ranking.rescore(query, [1, 2], index.vectors_of([1, 2]), 0.5, center)
    assert [i for i, _ in discounted] == [2, 1]


def test_the_discount_is_shrunk_while_the_index_is_small() -> None:
    mean = np.ones(4, dtype=np.float32)
    assert ranking.shared_direction(None, 0, 0.75) is None
    assert ranking.shared_direction(mean, 10, 0.0) is None
    small = ranking.shared_direction(mean, 10, 0.75)
    large = ranking.shared_direction(mean, 100_000, 0.75)
    assert small is not None and large is not None
    assert float(small[0]) < 0.1 < 0.74 < float(large[0]) <= 0.75


def test_index_mean_follows_adds_and_removals_exactly() -> None:
    rng = np.random.default_rng(3)
    index = VectorIndex(ndim=8)
    assert index.mean() is None
    vecs = rng.normal(size=(5, 3, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=-1, keepdims=True)
    index.add((i, vecs[i]) for i in range(5))
    index.add([(9, vecs[0])])  # a copy adds no distinct vector
    index.remove([1, 3])
    stored = index.vectors_of([0, 2, 4])
    expected = np.concatenate(stored).mean(axis=0)
    mean = index.mean()
    assert mean is not None
    np.testing.assert_allclose(mean, expected, atol=1e-6)
    index.remove([0, 2, 4, 9])
    assert index.vector_count == 0 and index.mean() is None
