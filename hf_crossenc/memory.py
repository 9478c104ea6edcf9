"""Handing freed CPU memory back to the operating system (glibc's heap)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from typing import Any

from transformers import TrainerCallback


@functools.cache
def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


def trim_heap() -> bool:
    """Return the free pages of the C heap to the OS (glibc's ``malloc_trim(0)``); False where there is no glibc.

    PyTorch's CPU tensors come from glibc's malloc. A training run allocates and frees activations of a new
    shape at nearly every step (length-grouped batches), and glibc keeps most freed memory resident for reuse,
    where later requests of other sizes often do not fit: the resident set creeps up, step after step, well
    above what is live. Trimming gives those pages back; it costs a few tens of milliseconds.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def release_memory() -> None:
    """Between trainings in one process: collect the finished one's objects and trim the heap, so that the
    next training starts from a smaller resident set."""
    gc.collect()
    trim_heap()


class HeapTrimCallback(TrainerCallback):
    """Trims the heap (`trim_heap`) every ``every`` optimizer steps: on CPU, the meaning hf_crossenc gives to
    ``--torch_empty_cache_steps``, which transformers applies to accelerator caches only."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.trims = 0

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.every > 0 and state.global_step % self.every == 0 and trim_heap():
            self.trims += 1
