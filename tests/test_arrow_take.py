"""hf_crossenc.arrow_take: rows of a chunked column by index, as ChunkedArray.take gives them, without concatenating."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from hf_crossenc.arrow_take import take

COLUMN = pa.chunked_array([["a", "b", "c"], ["d"], [], ["e", None, "g"]], type=pa.string())


@pytest.mark.parametrize(
    "indices",
    [[0], [6, 0, 3, 3, 5], list(range(7))[::-1], [], [4, 1, 4, 2], np.array([3, 3, 3], dtype=np.int32)],
)
def test_same_rows_as_chunked_take(indices):
    expected = COLUMN.take(pa.array(np.asarray(indices, dtype=np.int64))).combine_chunks()
    got = take(COLUMN, indices)
    assert isinstance(got, pa.Array) and got.type == pa.string() and got.equals(expected)


def test_plain_arrays_and_single_chunks():
    assert take(pa.array([10, 20, 30]), [2, 0]).to_pylist() == [30, 10]
    assert take(pa.chunked_array([[1, 2, 3]]), [1, 1]).to_pylist() == [2, 2]


def test_out_of_range_is_an_error():
    with pytest.raises(IndexError):
        take(COLUMN, [7])
    with pytest.raises(IndexError):
        take(COLUMN, [-1])


PEAK = """
import sys
import pyarrow as pa
from hf_crossenc.arrow_take import take
column = pa.chunked_array([pa.array(["x" * 1000] * 10000) for _ in range(20)])  # 200 MB in 20 chunks
before = pa.total_allocated_bytes()
taken = take(column, [5, 199999]) if sys.argv[1] == "take" else column.take(pa.array([5, 199999]))
assert taken.to_pylist() == ["x" * 1000] * 2
print((pa.default_memory_pool().max_memory() - before) >> 20)  # MB allocated at the peak, beyond the column
"""


def test_only_the_rows_taken_are_copied():
    """Peak Arrow memory of a fresh process taking two rows of a 200 MB column: ChunkedArray.take copies it first."""
    grown = {
        how: int(subprocess.run([sys.executable, "-c", PEAK, how], capture_output=True, text=True, check=True).stdout)
        for how in ("take", "chunked")
    }
    assert grown["take"] < 20 and grown["chunked"] > 150, grown
