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


def test_distilled_labels_keep_the_texts_in_their_file(tiny_model_dir, tmp_path):
    """The mixed labels replace the gold ones; the texts are not copied into memory (the split stays file-backed),
    and the values are those of the mixing formula."""
    import datasets
    import numpy as np

    from hf_crossenc.arguments import TeacherArguments
    from hf_crossenc.bi_encoder import BiEncoder
    from hf_crossenc.distillation import calibrate, mix_labels, teacher_targets
    from hf_crossenc.teacher import distill_labels

    features = datasets.Features(
        {"text_a": datasets.Value("string"), "text_b": datasets.Value("string"), "label": datasets.Value("float32")}
    )
    texts_a = [f"a cat number {i} sits" for i in range(12)]
    texts_b = [f"a dog {'runs' if i % 2 else 'sleeps'} {i}" for i in range(12)]
    gold = [(i % 5) / 4 for i in range(12)]
    datasets.Dataset.from_dict({"text_a": texts_a, "text_b": texts_b, "label": gold}, features=features).save_to_disk(tmp_path / "split")
    split = datasets.load_from_disk(str(tmp_path / "split"))
    args = TeacherArguments(teacher=str(tiny_model_dir), teacher_weight=0.3, teacher_finetune_epochs=0, silver_pairs=0)
    mixed = distill_labels(split, args, max_length=32)
    cosine = BiEncoder(str(tiny_model_dir), max_length=32, precision=args.teacher_precision, pooling=args.teacher_pooling).cosine(
        texts_a, texts_b
    )
    gold32 = np.asarray(split["label"], dtype=np.float64)
    expected = mix_labels(gold32, teacher_targets(cosine, *calibrate(cosine, gold32)), 0.3).astype(np.float32)
    assert mixed.features == features and mixed["text_a"][:] == texts_a and mixed["text_b"][:] == texts_b
    np.testing.assert_array_equal(np.asarray(mixed["label"], dtype=np.float32), expected)
    assert mixed.cache_files  # a Dataset.from_dict copy of the texts would have none
    assert any(isinstance(t, datasets.table.MemoryMappedTable) for t in [mixed.data] + list(getattr(mixed.data, "blocks", [[]])[0]))
