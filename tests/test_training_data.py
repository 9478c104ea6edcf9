"""hf_crossenc.training_data: RandomSwap, the seeded per-epoch swap of the two texts of a pair."""

from __future__ import annotations


def test_random_swap_depends_only_on_seed_epoch_and_index():
    import datasets

    from hf_crossenc.ranking import INDEX
    from hf_crossenc.training_data import RandomSwap

    data = {"text_a": [f"a{i}" for i in range(200)], "text_b": [f"b{i}" for i in range(200)], INDEX: list(range(200))}

    def draw(swap: RandomSwap, epoch: int, order: list[int]) -> dict[int, dict]:
        swap.epoch = epoch
        ds = datasets.Dataset.from_dict(data).with_transform(swap)
        return {i: ds[i] for i in order}

    first = draw(RandomSwap(3, 200), 0, list(range(200)))
    assert first == draw(RandomSwap(3, 200), 0, list(reversed(range(200))))  # order of draws does not matter
    swapped = [r for r in first.values() if r["text_a"].startswith("b")]
    assert 60 < len(swapped) < 140  # about half
    assert all(r["text_b"] == "a" + r["text_a"][1:] for r in swapped)
    assert draw(RandomSwap(3, 200), 1, list(range(200))) != first  # a fresh draw each epoch
    ds = datasets.Dataset.from_dict({**data, "length": list(range(200))}).with_transform(RandomSwap(3, 200))
    assert list(ds["length"]) == list(range(200))  # column reads pass through


def test_hash_by_identity_leaves_the_class_alone_without_the_private_pickler_hook(monkeypatch):
    """`datasets.utils._dill.pklregister` is private: where it is gone, the class is returned unchanged (datasets then
    fingerprints its objects by pickling, its default)."""
    import sys

    from hf_crossenc.training_data import hash_by_identity

    class Transform:
        pass

    monkeypatch.setitem(sys.modules, "datasets.utils._dill", None)
    assert hash_by_identity(Transform) is Transform
