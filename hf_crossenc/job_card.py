"""The model-card facts of a training run, from its arguments and data: names a Hub visitor can use, the
hyperparameters that matter, and a few real example pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .arguments import DataArguments, ModelArguments, TeacherArguments
from .benchmarks import BENCHMARKS
from .card_names import (
    BUNDLED_HUB_ID,
    STSB_HUB_ID,
    describe_local_base,
    hub_id_of_cache_folder,
    is_local,
    local_base_lineage,
    local_name,
    public_model_name,
    public_split_source,
)
from .data import TEXT_A, TEXT_B
from .inference import resolve_precision
from .model_card import CrossEncoderModelCardData
from .modeling import BUNDLED_MODEL, ScoreSemantics, bundled_model_path, resolve_model_path
from .pooling import resolve_pooling
from .task_data import TaskData
from .tasks import KIND
from .teacher import describe_teacher
from .training_args import CrossEncoderTrainingArguments

__all__ = ["BUNDLED_HUB_ID", "STSB_HUB_ID", "build_card", "card_examples", "describe_base", "teacher_facts"]

CARD_EXAMPLE_COUNT = 5


def build_card(
    model_args: ModelArguments,
    data_args: DataArguments,
    teacher_args: TeacherArguments,
    training_args: CrossEncoderTrainingArguments,
    splits: dict[str, Any],
    semantics: ScoreSemantics,
) -> CrossEncoderModelCardData:
    """Card facts known before training; the callback and the final evaluation add the rest. Every model and dataset
    is named as a Hub visitor can use it (`hf_crossenc.card_names`): never a path of this machine."""
    base_model, via_model, base_short = describe_base(model_args.model_name_or_path)
    local_dataset = is_local(data_args.dataset_name)
    dataset_id = data_args.dataset_card_id or (None if local_dataset else data_args.dataset_name)
    source_folder = local_name(data_args.dataset_name) if local_dataset else Path(splits["train"].source).parent.name
    if source_folder in BENCHMARKS:  # e.g. msrp/train.csv: "MSRP"
        source_folder = BENCHMARKS[source_folder].title
    pretty = "STS-B (English)" if dataset_id == STSB_HUB_ID else (dataset_id or source_folder or None)
    kind = KIND[semantics.task]
    teacher = teacher_facts(teacher_args)
    task_extra: dict[str, Any] = {}
    if semantics.task == "regression":
        task_extra = {
            "train_pair_order": data_args.train_pair_order,
            "score_both_orders": semantics.symmetric,
            "label_scale": list(semantics.label_scale),
        }
    elif semantics.task == "reranking" and semantics.loss == "listwise":
        task_extra = {"train_group_size": training_args.train_group_size}
    elif semantics.task == "classification":
        task_extra = {"label_names": semantics.label_names}
    return CrossEncoderModelCardData(
        language=model_args.language,
        license=model_args.license,
        base_model=base_model,
        via_model=via_model,
        datasets=[dataset_id] if dataset_id else None,
        metrics=["pearsonr", "spearmanr"] if semantics.task == "regression" else None,
        model_name=f"{base_short} {kind}" + (f" fine-tuned on {pretty}" if pretty else ""),
        model_id=training_args.hub_model_id,
        task=semantics.task,
        activation=semantics.activation,
        label_scale=list(semantics.label_scale),
        loss=semantics.loss,
        max_length=semantics.max_length,
        dataset_name=pretty,
        split_sources={name: public_split_source(split.source, data_args.dataset_name) for name, split in splits.items()},
        split_sizes={name: len(split) for name, split in splits.items()},
        label_stats={name: split.raw_label_stats for name, split in splits.items() if split.raw_label_stats},
        symmetric_train=data_args.train_pair_order,
        symmetric_inference=semantics.symmetric,
        best_metric=training_args.metric_for_best_model,
        label_names=list(semantics.label_names) if semantics.label_names else None,
        extra_hyperparameters={
            "max_length": model_args.max_length,
            **({"dropout": model_args.dropout} if model_args.dropout is not None else {}),  # the saved config keeps the base's
            **({"freeze_embeddings": True} if model_args.freeze_embeddings else {}),
            **({"freeze_layers": model_args.freeze_layers} if model_args.freeze_layers else {}),
            **task_extra,
            **teacher,
        },
    )


def describe_base(name_or_path: str | None) -> tuple[str | None, str | None, str]:
    """The base model for the card: its Hub id (a local base: the Hub model beneath it, if its card records one), the
    local model it came by in words (None for a Hub base), and a short name for the card's title."""
    if name_or_path in (None, "", BUNDLED_MODEL) or not is_local(name_or_path):
        hub_id = BUNDLED_HUB_ID if name_or_path in (None, "", BUNDLED_MODEL) else str(name_or_path)
        return hub_id, None, hub_id.split("/")[-1]
    folder = Path(name_or_path).expanduser().resolve()
    hub_id = BUNDLED_HUB_ID if folder == bundled_model_path().resolve() else hub_id_of_cache_folder(folder)
    if hub_id:  # the bundled MiniLM, or a snapshot in the Hugging Face cache, given by its path
        return hub_id, None, hub_id.split("/")[-1]
    # e.g. the STS-B model a two-stage recipe starts from, or an earlier round: name the Hub model beneath it
    lineage = local_base_lineage(folder)
    via = describe_local_base(folder)
    plain = via.startswith("a local model")  # not trained by hf_crossenc: its folder name is its only name
    return lineage, via, (lineage or (folder.name if plain else "cross-encoder")).split("/")[-1]


def card_examples(data: TaskData) -> list[dict[str, Any]]:
    """A few real pairs from the validation (else test) split: spread over the label range (regression),
    one per class in turn (classification), or one query's candidates (reranking)."""
    split = data.splits.get("validation") or data.splits.get("test")
    if split is None or "label" not in split.dataset.column_names:
        return []
    if data.task == "reranking":
        group = next((g for g in split.groups if 0 < sum(g.labels) < len(g.labels)), None)
        if group is None:
            return []
        keep = ([k for k, y in enumerate(group.labels) if y][:2] + [k for k, y in enumerate(group.labels) if not y])[:CARD_EXAMPLE_COUNT]
        return [{"text_a": group.query, "text_b": group.passages[k], "gold": group.labels[k], "split": split.name} for k in sorted(keep)]
    labels = split.dataset["label"]  # one column read, not a row read per comparison
    if data.task == "classification":
        assert data.vocab is not None
        by_class: dict[int, list[int]] = {}
        for i, y in enumerate(labels):
            by_class.setdefault(int(y), []).append(i)
        picks: list[int] = []
        while len(picks) < min(CARD_EXAMPLE_COUNT, len(labels)):
            for rows in by_class.values():
                if rows and len(picks) < CARD_EXAMPLE_COUNT:
                    picks.append(rows.pop(0))
        rows = split.dataset.select(picks)
        return [{"text_a": r[TEXT_A], "text_b": r[TEXT_B], "gold": data.vocab.names[int(r["label"])], "split": split.name} for r in rows]
    order = sorted(range(len(labels)), key=labels.__getitem__)
    picked = {order[round(k * (len(order) - 1) / max(1, CARD_EXAMPLE_COUNT - 1))] for k in range(min(CARD_EXAMPLE_COUNT, len(order)))}
    rows = split.dataset.select(sorted(picked, key=lambda i: -labels[i]))
    return [{"text_a": r[TEXT_A], "text_b": r[TEXT_B], "gold": data.scale.denormalise(r["label"]), "split": split.name} for r in rows]


def teacher_facts(teacher_args: TeacherArguments) -> dict[str, Any]:
    """The teacher's hyperparameters for the card (none without a teacher), named as a Hub visitor can use them."""
    if not teacher_args.active:
        return {}
    teacher_name, teacher_epochs = describe_teacher(teacher_args)
    pooling = resolve_pooling(resolve_model_path(teacher_args.teacher, "--teacher"), teacher_args.teacher_pooling)
    facts: dict[str, Any] = {"teacher": public_model_name(teacher_name), "teacher_pooling": pooling.mode}
    if teacher_epochs:
        facts["teacher_finetune_epochs"] = teacher_epochs
    facts.update(
        teacher_precision=resolve_precision(teacher_args.teacher_precision, use_cpu=True),
        teacher_weight=teacher_args.teacher_weight,
        silver_pairs=teacher_args.silver_pairs,
    )
    if teacher_args.silver_file:
        facts["silver_file"] = local_name(teacher_args.silver_file)
    if teacher_args.cross_encoder_teacher:  # an earlier round in words, else its Hub id or folder name
        facts["cross_encoder_teacher"] = public_model_name(teacher_args.cross_encoder_teacher)
        facts["cross_encoder_share"] = teacher_args.cross_encoder_share
    return facts
