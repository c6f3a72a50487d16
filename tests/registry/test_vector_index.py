"""The registry's int8 vector index (``VectorIndex``, a real usearch graph) against exact search:
near-duplicate listings come back in the order exact cosines give them, and the vectors the
second stage reads back are the ones that were stored."""

from __future__ import annotations

import numpy as np

from athkit.registry.vectors import VectorIndex


def _unit(m: np.ndarray) -> np.ndarray:
    return (m / np.linalg.norm(m, axis=-1, keepdims=True)).astype(np.float32)


def _clusters(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """5000 vectors in 50 tight clusters (cosine ~0.8 to their centre: listings that say nearly
    the same thing), and 20 queries near the centres: the top 10 of a query are near-ties."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(50, 384)))
    data = _unit(centres[rng.integers(0, 50, 5000)] + rng.normal(0, 0.04, (5000, 384)))
    queries = _unit(centres[:20] + rng.normal(0, 0.04, (20, 384)))
    return data, queries


def test_int8_index_returns_the_exact_top_ten_among_near_duplicates() -> None:
    data, queries = _clusters(5)
    index = VectorIndex(dtype="i8")
    index.add((i + 1, data[i : i + 1]) for i in range(len(data)))
    exact = queries @ data.T
    shares = []
    for q, scores in zip(queries, exact, strict=True):
        got = [eid - 1 for eid, _ in index.search(q, 10)]
        assert len(got) == 10
        tenth = np.sort(scores)[-10]
        shares.append(float(np.mean(scores[got] >= tenth - 1e-6)))
        # the cosines it reports are the exact ones to int8 precision, and a query's length
        # does not matter (cosine)
        for eid, cos in index.search(q, 10):
            assert abs(cos - float(scores[eid - 1])) < 2e-3
        assert [e for e, _ in index.search(3.0 * q, 10)] == [e + 1 for e in got]
    # usearch's own int8 cast (unit vector x 127, truncated) returned 0.915 of them here
    assert np.mean(shares) >= 0.95


def test_int8_vectors_read_back_as_stored() -> None:
    data, _ = _clusters(6)
    index = VectorIndex(dtype="i8")
    index.add([(1, data[:3]), (2, data[3:4])])
    back = index.vectors_of([1, 2])
    assert [len(m) for m in back] == [3, 1]
    cos = np.sum(np.concatenate(back) * data[:4], axis=1)
    # usearch's own cast left 0.9975 of a row's direction; the scaled, rounded rows keep it
    assert float(cos.min()) > 0.9999


def test_entries_sharing_a_vector_leave_the_index_one_at_a_time() -> None:
    data, queries = _clusters(7)
    index = VectorIndex(dtype="i8")
    index.add([(1, data[:2]), (2, data[1:2]), (3, data[2:3])])  # 1 and 2 share data[1]
    assert index.vector_count == 3
    assert {e for e, _ in index.search(data[1], 3)} == {1, 2, 3}
    index.remove([1])
    assert index.vector_count == 2  # data[0] went with 1; data[1] stays for 2
    assert [e for e, _ in index.search(data[1], 1)] == [2]
    assert [len(m) for m in index.vectors_of([1, 2])] == [0, 1]
    index.remove([2])
    assert index.vector_count == 1
    assert [e for e, _ in index.search(data[1], 3)] == [3]
