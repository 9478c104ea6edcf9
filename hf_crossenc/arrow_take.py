"""Rows of a chunked Arrow column by index, chunk by chunk.

`pyarrow.ChunkedArray.take` first concatenates every chunk into one array: over a memory-mapped file of 10^7 texts
that is a copy of the whole column (gigabytes) for each call, however few rows are taken. `take` gathers the rows
from the chunks that hold them and puts them back in the order asked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa


def take(column: pa.ChunkedArray | pa.Array, indices: Any) -> pa.Array:
    """``column[indices]`` as one array (any order, repeats allowed), copying only the rows taken."""
    positions = np.asarray(indices, dtype=np.int64)
    if isinstance(column, pa.Array):
        return column.take(pa.array(positions, pa.int64()))
    if column.num_chunks == 1:
        return column.chunk(0).take(pa.array(positions, pa.int64()))
    if not len(positions) or column.num_chunks == 0:
        return pa.array([], type=column.type) if not len(positions) else column.take(pa.array(positions, pa.int64()))
    bounds = np.cumsum([0, *(len(chunk) for chunk in column.chunks)])
    if positions.min() < 0 or positions.max() >= bounds[-1]:
        raise IndexError(f"row index out of range for a column of {bounds[-1]} rows")
    chunk_of = np.searchsorted(bounds, positions, side="right") - 1
    order = np.argsort(chunk_of, kind="stable")
    cuts = np.flatnonzero(np.diff(chunk_of[order])) + 1
    parts = []
    for part in np.split(order, cuts):
        chunk = int(chunk_of[part[0]])
        parts.append(column.chunk(chunk).take(pa.array(positions[part] - bounds[chunk], pa.int64())))
    gathered = pa.concat_arrays(parts)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return gathered.take(pa.array(inverse, pa.int64()))
