"""Length-grouped sampling over an Arrow length column: transformers' `LengthGroupedSampler` order, from numpy.

`transformers.Trainer` hands its sampler ``dataset["length"]``, a `datasets.Column` that reads one row per index,
and `get_length_grouped_indices` sorts Python lists of every index: minutes and gigabytes at 10^7 pairs.
`CrossEncoderLengthGroupedSampler` reads the column once as a numpy array and draws the very same order (the same
`torch.randperm`, each mega-batch sorted by decreasing length with ties in drawn order, the longest batch first).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from transformers.trainer_pt_utils import LengthGroupedSampler


def length_grouped_indices(lengths: np.ndarray, batch_size: int, generator: torch.Generator | None = None) -> np.ndarray:
    """`transformers.trainer_pt_utils.get_length_grouped_indices`, vectorised (same indices for the same RNG state)."""
    size = len(lengths)
    mult = min(size // (batch_size * 4), 50) or 1
    indices = torch.randperm(size, generator=generator).numpy()
    mega = mult * batch_size
    out = np.empty(size, dtype=np.int64)
    maxima = []
    for start in range(0, size, mega):
        block = indices[start : start + mega]
        ordered = block[np.argsort(-lengths[block], kind="stable")]  # sorted(..., reverse=True) keeps ties in order
        out[start : start + len(block)] = ordered
        maxima.append(int(lengths[ordered[0]]))
    longest = int(torch.argmax(torch.tensor(maxima)).item())
    out[0], out[longest * mega] = out[longest * mega], out[0]
    return out


class CrossEncoderLengthGroupedSampler(LengthGroupedSampler):
    """`LengthGroupedSampler` over a numpy array of lengths."""

    def __init__(self, batch_size: int, lengths: np.ndarray, generator: torch.Generator | None = None) -> None:
        self.batch_size = batch_size
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        return map(int, length_grouped_indices(self.lengths, self.batch_size, self.generator))


def column_lengths(dataset: Any, column: str) -> np.ndarray | None:
    """The `column` of a `datasets.Dataset` as a numpy array (its indices mapping applied, no transform run); None if
    it is not a dataset with that column."""
    import datasets

    if not isinstance(dataset, datasets.Dataset) or column not in dataset.column_names:
        return None
    return np.asarray(dataset.with_format("arrow")[column].to_numpy(), dtype=np.int64)


def arrow_length_sampler(sampler: Any, dataset: Any, column: str) -> Any:
    """Trainer's sampler, with a `LengthGroupedSampler` over a dataset's length column swapped for the numpy one."""
    if type(sampler) is not LengthGroupedSampler:
        return sampler
    lengths = column_lengths(dataset, column)
    if lengths is None:
        return sampler
    return CrossEncoderLengthGroupedSampler(sampler.batch_size, lengths, sampler.generator)
