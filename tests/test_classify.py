"""convtool.classify: probabilities and top-k against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from convtool.classify import is_class_vector, probabilities, read_labels, top_k
from convtool.errors import UsageError


def test_logits_get_a_softmax_and_probabilities_are_kept():
    logits = np.random.default_rng(0).normal(size=1000) * 5
    p, applied = probabilities(logits)
    ref = np.exp(logits - logits.max())
    assert applied
    np.testing.assert_allclose(p, ref / ref.sum(), rtol=1e-12)
    q, applied = probabilities(p.astype(np.float32))  # float32 sums to 1 within round-off
    assert not applied
    np.testing.assert_array_equal(q, p.astype(np.float32))
    big = np.array([1000.0, 0.0])  # no overflow
    assert probabilities(big)[0].tolist() == [1.0, 0.0]
    with pytest.raises(UsageError, match="not finite"):
        probabilities(np.array([np.nan, 1.0]))


def test_top_k_order_ties_labels_and_shapes():
    ranked = top_k(np.array([0.25, 0.25, 0.5]), 5, ["a", "b", "c"])
    assert [(r.rank, r.index, r.label) for r in ranked] == [(1, 2, "c"), (2, 0, "a"), (3, 1, "b")]
    assert top_k(np.array([0.1, 0.9]), 1)[0].label == "1"
    with pytest.raises(UsageError, match="2 labels for 3 classes"):
        top_k(np.array([0.1, 0.2, 0.7]), 1, ["a", "b"])
    assert is_class_vector((5,)) and is_class_vector((5, 1, 1))
    assert not is_class_vector((5, 2, 1)) and not is_class_vector(())


def test_read_labels(tmp_path):
    path = tmp_path / "l.txt"
    path.write_text("n01440764 tench, Tinca tinca\r\n  goldfish \n\n\n")
    assert read_labels(path) == ["n01440764 tench, Tinca tinca", "goldfish"]
    path.write_text("\n\n")
    with pytest.raises(UsageError, match="is empty"):
        read_labels(path)
