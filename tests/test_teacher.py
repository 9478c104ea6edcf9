"""hf_crossenc.teacher: the process that fine-tunes the bi-encoder teacher."""

from __future__ import annotations

import torch


def _threads() -> int:
    return torch.get_num_threads()


def test_teacher_finetune_child_uses_the_parents_threads_not_accelerates_omp_default(monkeypatch):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from hf_crossenc.teacher import _child_setup

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what `accelerate launch` exports on a CPU machine
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as plain:
        assert plain.submit(_threads).result() == 1
    with ProcessPoolExecutor(1, mp_context=spawn, initializer=_child_setup, initargs=(2,)) as child:
        assert child.submit(_threads).result() == 2
