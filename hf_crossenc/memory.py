"""CPU memory: handing freed memory back to the operating system (glibc's heap) and bounding the caches of compiled kernels."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
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


# PyTorch's bf16 matrix products on CPU run through oneDNN, which compiles a kernel ("primitive") for each operation
# and input shape and keeps it in two caches, oneDNN's own and ideep's (PyTorch's oneDNN wrapper), 1024 entries each by
# default. An entry measured here holds ~0.5 MB that no heap trim gives back, and length-grouped training, evaluation
# and scoring of pairs padded to their batch's longest meet hundreds of shapes. Both variables are read when the first
# kernel is built, so setting them at the start of a run, after importing torch, is early enough.
KERNEL_CACHE_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")


def bound_kernel_caches(capacity: int) -> dict[str, str]:
    """Cap oneDNN's and ideep's caches of compiled CPU kernels at ``capacity`` entries each (0: leave PyTorch's
    default of 1024). A variable already set in the environment wins. Returns the values in effect (empty when
    neither is set). Call it before the first bf16 matrix product of the process."""
    if capacity < 0:
        raise ValueError(f"--cpu_kernel_cache must be 0 (PyTorch's default) or a number of kernels, got {capacity}")
    if capacity > 0:
        for name in KERNEL_CACHE_VARIABLES:
            os.environ.setdefault(name, str(capacity))
    return {name: os.environ[name] for name in KERNEL_CACHE_VARIABLES if name in os.environ}
