"""Recipes of several training runs: distillation rounds and seed soups.

Each calls the single run (`train_once`, passed in by `hf_crossenc.job.train`) with `dataclasses.replace`d arguments;
earlier rounds and soup members live in sub-folders of the output folder and are reused with ``--resume``.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .arguments import DataArguments, ModelArguments, TeacherArguments
from .checkpoints import check_output_dir, latest_complete_checkpoint
from .errors import ConfigError
from .fingerprint import check_fingerprint, run_fingerprint
from .memory import release_memory
from .results import CrossEncoderJobResult
from .teacher import TEACHER_DIR
from .training_args import CrossEncoderTrainingArguments, split_list

logger = logging.getLogger("hf_crossenc")

TrainOnce = Callable[..., CrossEncoderJobResult]


def run_rounds(
    model_args: ModelArguments,
    data_args: DataArguments,
    teacher_args: TeacherArguments,
    training_args: CrossEncoderTrainingArguments,
    *,
    train_once: TrainOnce,
) -> CrossEncoderJobResult:
    """``--distill_rounds R``: R trainings, each from the base model or (``--later_rounds_init previous``) from the
    previous round's model; each round after the first is taught by the bi-encoder together with the previous round's
    model (`--cross_encoder_teacher`) and labels ``--later_rounds_silver_pairs`` extra pairs per pair for
    ``--later_rounds_epochs`` epochs (dropout ``--later_rounds_dropout``). Rounds before the last live in
    OUTPUT_DIR/rounds/round-K (their checkpoints are deleted once the round is done); with ``--resume`` a complete round
    is reused."""
    from accelerate import PartialState

    check_output_dir(training_args, rounds=True)
    out = Path(training_args.output_dir)
    state = PartialState()
    teacher = teacher_args.cross_encoder_teacher
    history: list[dict[str, Any]] = []
    result = CrossEncoderJobResult(str(out))
    rounds = teacher_args.distill_rounds
    for k in range(1, rounds + 1):
        last = k == rounds
        folder = out if last else out / "rounds" / f"round-{k}"
        model, teach, train = round_arguments(model_args, teacher_args, training_args, k, teacher, out)
        train = replace(train, output_dir=str(folder), overwrite_output_dir=True)
        if not last:
            train = replace(train, push_to_hub=False)
            if training_args.resume and (folder / "results.json").is_file():
                check_fingerprint(folder, run_fingerprint(model, data_args, teach, train), f"--resume (round {k})")
                logger.info("round %d/%d: reusing the complete round in %s", k, rounds, folder)
                history.append({"round": k, **CrossEncoderJobResult.read(folder).metrics})
                teacher = str(folder)
                continue
        train = replace(train, resume=can_resume(training_args, folder))
        logger.info("round %d/%d -> %s%s", k, rounds, folder, f" (teacher {teacher})" if teacher else "")
        result = train_once(model, data_args, teach, train, earlier_rounds=history if last else None)
        state.wait_for_everyone()
        release_memory()
        if not last:
            if state.is_main_process:
                delete_checkpoints(folder)
            history.append({"round": k, **result.metrics})
            teacher = str(folder)
        state.wait_for_everyone()
    return result


def round_arguments(
    model_args: ModelArguments,
    teacher_args: TeacherArguments,
    training_args: CrossEncoderTrainingArguments,
    k: int,
    teacher: str | None,
    out: Path,
) -> tuple[ModelArguments, TeacherArguments, CrossEncoderTrainingArguments]:
    """The arguments of round `k` (one run) taught, after the first, by the cross-encoder `teacher` too."""
    model, teach, train = model_args, replace(teacher_args, distill_rounds=1), training_args
    if teacher:
        teach = replace(teach, cross_encoder_teacher=teacher, silver_pairs=teacher_args.later_rounds_silver_pairs)
        if (teacher_args.teacher_finetune_epochs or 0) > 0:  # the first round's fine-tuned bi-encoder teaches every round
            teach = replace(teach, teacher=str(out / "rounds" / "round-1" / TEACHER_DIR), teacher_finetune_epochs=0.0)
        if teacher_args.later_rounds_epochs is not None:
            train = replace(train, num_train_epochs=teacher_args.later_rounds_epochs)
        if teacher_args.later_rounds_dropout is not None:
            model = replace(model, dropout=teacher_args.later_rounds_dropout)
        if teacher_args.later_rounds_freeze_layers is not None:
            model = replace(model, freeze_layers=teacher_args.later_rounds_freeze_layers)
    if k > 1 and teacher_args.later_rounds_init == "previous":
        model = replace(model, model_name_or_path=teacher)
    return model, teach, train


def can_resume(training_args: CrossEncoderTrainingArguments, folder: Path) -> bool:
    """With --resume: whether this round's or member's folder has a complete checkpoint to go on from."""
    return bool(training_args.resume and latest_complete_checkpoint(folder, training_args.average_checkpoints) is not None)


def delete_checkpoints(folder: Path) -> None:
    """Remove the checkpoint-* folders of a finished earlier round or soup member (its model stays)."""
    for checkpoint in folder.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)


def soup_member_summary(folder: str) -> dict[str, Any]:
    """A soup member for results.json and the card: its folder name, seed and scores (from its results.json)."""
    import json

    metrics = CrossEncoderJobResult.read(folder).metrics if Path(folder, "results.json").is_file() else {}
    seed = None
    args_file = Path(folder) / "training_args.json"
    if args_file.is_file():
        seed = json.loads(args_file.read_text()).get("seed")
    return {"model": Path(folder).name, "seed": seed, **metrics}


def soup_seeds(training_args: CrossEncoderTrainingArguments, teacher_args: TeacherArguments) -> list[int]:
    """The seeds of ``--soup_seeds``, checked."""
    try:
        seeds = [int(seed) for seed in split_list(training_args.soup_seeds)]
    except ValueError:
        raise ConfigError(f"--soup_seeds takes comma-separated integers, e.g. 42,1234,7; got {training_args.soup_seeds!r}.") from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--soup_seeds needs at least two different seeds, got {training_args.soup_seeds!r}.")
    if training_args.average_with:
        raise ConfigError("--soup_seeds sets --average_with itself: pass one or the other.")
    if teacher_args.distill_rounds > 1:
        raise ConfigError(
            "--soup_seeds with --distill_rounds is not supported: soup the last round (--distill_rounds 1 --cross_encoder_teacher ...)."
        )
    return seeds


def run_soup(
    model_args: ModelArguments,
    data_args: DataArguments,
    teacher_args: TeacherArguments,
    training_args: CrossEncoderTrainingArguments,
    *,
    train_once: TrainOnce,
) -> CrossEncoderJobResult:
    """``--soup_seeds S1,...,Sn``: the recipe trained once per seed — the first n-1 in OUTPUT_DIR/soup/seed-S (their
    checkpoints deleted once done), the last in OUTPUT_DIR with ``--average_with`` the others, so the saved model is
    the uniform average of the n models (each as its own recipe finishes it: best checkpoint, or the average of its
    epochs with --average_checkpoints). With ``--teacher_finetune_epochs`` the first member fine-tunes the bi-encoder
    teacher and every later member is taught by that one. With ``--resume`` a finished member is reused."""
    from accelerate import PartialState

    seeds = soup_seeds(training_args, teacher_args)
    check_output_dir(training_args, rounds=True)
    out = Path(training_args.output_dir)
    state = PartialState()
    members: list[str] = []
    result = CrossEncoderJobResult(str(out))
    for k, seed in enumerate(seeds, start=1):
        last = k == len(seeds)
        folder = out if last else out / "soup" / f"seed-{seed}"
        train = replace(training_args, soup_seeds=None, seed=seed, output_dir=str(folder), overwrite_output_dir=True)
        teach = teacher_args
        if members and (teacher_args.teacher_finetune_epochs or 0) > 0:  # the first member's fine-tuned teacher teaches every seed
            teach = replace(teacher_args, teacher=str(Path(members[0], TEACHER_DIR)), teacher_finetune_epochs=0.0)
        if last:
            train = replace(train, average_with=",".join(members))
        else:
            train = replace(train, push_to_hub=False)
            if training_args.resume and (folder / "results.json").is_file():
                check_fingerprint(folder, run_fingerprint(model_args, data_args, teach, train), f"--resume (soup member seed {seed})")
                logger.info("soup member %d/%d: reusing the finished run in %s", k, len(seeds), folder)
                members.append(str(folder))
                continue
        train = replace(train, resume=can_resume(training_args, folder))
        logger.info("soup member %d/%d (seed %d) -> %s", k, len(seeds), seed, folder)
        result = train_once(model_args, data_args, teach, train)
        state.wait_for_everyone()
        if not last:
            if state.is_main_process:
                delete_checkpoints(folder)
            members.append(str(folder))
        state.wait_for_everyone()
    return result
