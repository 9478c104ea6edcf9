"""The training examples of a job: teacher labels mixed in, both pair orders, token lengths for length-grouped
batches, and listwise groups drawn afresh every epoch."""

from __future__ import annotations

from typing import Any

import numpy as np
from transformers import TrainerCallback

from .arguments import DataArguments, TeacherArguments
from .data import TEXT_A, TEXT_B
from .data_collator import LENGTH_GROUPED, add_lengths
from .errors import ConfigError
from .memory import release_memory
from .ranking import GROUP, INDEX, ListwiseSampler, check_pointwise_training, listwise_dataset
from .task_data import TaskData
from .teacher import distill_labels, listwise_teachers
from .training_args import CrossEncoderTrainingArguments


def build_train_dataset(
    data: TaskData,
    data_args: DataArguments,
    teacher_args: TeacherArguments,
    training_args: CrossEncoderTrainingArguments,
    tokenizer: Any,
    max_length: int,
) -> tuple[Any, list[TrainerCallback]]:
    """The training dataset and the callbacks that draw it afresh each epoch. Adds token lengths to the evaluation
    splits too when the sampling strategy groups by length."""
    train = data.splits["train"]
    listwise = data.task == "reranking" and training_args.loss == "listwise"
    if listwise:
        dataset = listwise_dataset(train.groups, source=train.source)
    else:
        if data.task == "reranking":
            check_pointwise_training(train.groups, source=train.source)
        dataset = train.dataset.remove_columns([GROUP]) if GROUP in train.dataset.column_names else train.dataset
        if teacher_args.active:
            if data.vocab is not None and not data.vocab.binary:
                raise ConfigError("--teacher works with binary classification (one logit), not with several classes.")
            dataset = distill_labels(dataset, teacher_args, max_length, data.task, data.silver, training_args)
            release_memory()  # the teachers and their activations are gone: training starts from a smaller resident set
    if training_args.train_sampling_strategy in LENGTH_GROUPED:
        # Trainer's length-grouped samplers read this column (train and eval); computed once here.
        dataset = add_lengths(dataset, tokenizer, max_length, training_args.length_column_name)
        for name, split in data.splits.items():
            if name != "train":
                split.dataset = add_lengths(split.dataset, tokenizer, max_length, training_args.length_column_name)
    callbacks: list[TrainerCallback] = [MappedPagesRelease()]
    if listwise:
        teacher, reranker = listwise_teachers(teacher_args, train.dataset, max_length, training_args)
        sampler = ListwiseSampler(
            train.groups,
            training_args.train_group_size,
            training_args.seed,
            teacher=teacher,
            teacher_weight=teacher_args.teacher_weight,
            temperature=teacher_args.teacher_temperature,
            reranker=reranker,
            reranker_share=teacher_args.cross_encoder_share,
        )
        dataset = dataset.add_column(INDEX, np.arange(len(dataset))).with_transform(sampler)
        callbacks.append(sampler)
    elif data_args.train_pair_order == "both":
        dataset = swapped(dataset)
    elif data_args.train_pair_order == "swap":
        swap = RandomSwap(training_args.seed, len(dataset))
        dataset = dataset.add_column(INDEX, np.arange(len(dataset))).with_transform(swap)
        callbacks.append(swap)
    return dataset, callbacks


class MappedPagesRelease(TrainerCallback):
    """After every optimizer step, unmap the pages of the cached Arrow files that the step's random rows touched
    (`hf_crossenc.arrow_data.release_mapped_pages`): the resident set stays that of one step at any data size."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from .arrow_data import release_mapped_pages

        release_mapped_pages()


def swapped(dataset: Any) -> Any:
    """The same pairs with text_a and text_b exchanged."""
    import datasets

    flipped = dataset.rename_columns({TEXT_A: "_tmp"}).rename_columns({TEXT_B: TEXT_A}).rename_columns({"_tmp": TEXT_B})
    return datasets.concatenate_datasets([dataset, flipped.select_columns(dataset.column_names).cast(dataset.features)])


def hash_by_identity(cls: type) -> type:
    """Have `datasets` fingerprint a transform object of `cls` by its identity instead of pickling all its state (a
    listwise sampler holds every query group: ``with_transform`` would pickle gigabytes to name the result). Nothing is
    cached under such fingerprints; plain pickling of the objects is unchanged. `pklregister` is a private helper of
    `datasets`: where it has moved, the objects are fingerprinted by pickling, as `datasets` does by default (correct,
    only slower and larger for big listwise data)."""
    try:
        from datasets.utils._dill import pklregister
    except ImportError:
        return cls

    @pklregister(cls)
    def save(pickler: Any, obj: Any) -> None:
        pickler.save((cls.__qualname__, id(obj)))

    return cls


hash_by_identity(ListwiseSampler)


@hash_by_identity
class RandomSwap(TrainerCallback):
    """Swap text_a and text_b of each training pair with probability 0.5, freshly each epoch.

    A `datasets` transform (``dataset.with_transform(swap)``) and a `TrainerCallback` at once: the
    decision for example ``i`` in epoch ``e`` depends only on (seed, e, i), so an interrupted run
    that is resumed sees exactly the pairs an uninterrupted run would have seen.
    """

    def __init__(self, seed: int, size: int) -> None:
        self.seed, self.size = seed, size
        self.epoch = 0
        self._masks: dict[int, np.ndarray] = {}

    def mask(self, epoch: int) -> np.ndarray:
        if epoch not in self._masks:
            self._masks = {epoch: np.random.default_rng([self.seed, epoch]).random(self.size) < 0.5}
        return self._masks[epoch]

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.epoch = int(state.epoch or 0)

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if TEXT_A not in batch or TEXT_B not in batch or INDEX not in batch:
            return batch  # a column read such as dataset["length"]
        mask = self.mask(self.epoch)
        a, b = list(batch[TEXT_A]), list(batch[TEXT_B])
        for k, i in enumerate(batch[INDEX]):
            if mask[i]:
                a[k], b[k] = b[k], a[k]
        return {**batch, TEXT_A: a, TEXT_B: b}
