"""Model cards: `CrossEncoderModelCardData`, the callback that fills it, and rendering with plots.

The card is rendered from the top-level ``model_card_template.md`` through
``huggingface_hub.ModelCard.from_template``; the YAML front matter (including the model-index that
makes the Hub show evaluation results) is built by huggingface_hub from the card data, never by
hand. Values that are not known become HTML comments in the page instead of empty sections.

The card describes one of three tasks (``CrossEncoderModelCardData.task``):

* ``"regression"``: one logit, ``sigmoid(logit)`` is a similarity score (correlation metrics);
* ``"classification"``: binary (one logit, sigmoid = probability of the positive label, a decision
  threshold) or multi-class (softmax over one logit per label);
* ``"reranking"``: one logit, ``sigmoid(logit)`` is a query–passage relevance score whose order matters
  (ranking metrics grouped by query).
"""

from __future__ import annotations

import logging
import math
import numbers
import platform
from dataclasses import MISSING, dataclass, field, fields
from enum import Enum
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import TrainerCallback

from . import __version__
from .card_names import DESCRIPTIONS, python_string
from .card_names import local_base_lineage as local_base_lineage  # re-exported: its home was this module
from .card_plots import save_plots
from .tasks import DEFAULT_METRIC, TASKS

logger = logging.getLogger(__name__)

TEMPLATE_NAME = "model_card_template.md"
YAML_KEYS = ("language", "license", "library_name", "pipeline_tag", "tags", "base_model", "datasets", "metrics", "model_name")
MODEL_ID_PLACEHOLDER = "path/to/this/model"
MODEL_ID_COMMENT = "<!-- model id: not known yet"
SECRET_MARKERS = ("token", "secret", "password", "api_key")
SPLIT_NAMES = {"validation": "validation", "test": "test"}

# Eval metric keys shown when `metric_names` is empty, per task variant (see `task_variant`).
DEFAULT_METRICS = {
    "regression": ["pearson", "spearman"],
    "binary": ["accuracy", "f1", "auc", "average_precision"],
    "multiclass": ["accuracy", "f1"],
    "reranking": ["map", "mrr@10", "ndcg@10"],
}
# The `metrics:` list of the front matter (Hub metric ids) when the card does not set one.
DEFAULT_YAML_METRICS = {
    "regression": ["pearsonr", "spearmanr"],
    "binary": ["accuracy", "f1", "roc_auc"],
    "multiclass": ["accuracy", "f1"],
    "reranking": ["map", "mrr", "ndcg"],
}
BASE_TAGS = ("sentence-transformers", "cross-encoder", "transformers", "generated_from_trainer", "hf_crossenc")
"""Tags of every card (the task, and ``reranker`` for rerankers, are added): the Hub lists the model under them."""
PIPELINE_TAGS = {"regression": "text-classification", "classification": "text-classification", "reranking": "text-ranking"}
# (task_type, task_name) of the model-index results.
EVAL_TASKS = {
    "regression": ("text-classification", "Semantic Similarity"),
    "classification": ("text-classification", "Pair Classification"),
    "reranking": ("text-ranking", "Reranking"),
}
# Short human names (table headers); mrr@k, ndcg@k, ... are named for any k by `metric_label`.
METRIC_LABELS = {
    "pearson": "Pearson",
    "spearman": "Spearman",
    "accuracy": "Accuracy",
    "f1": "F1",
    "auc": "ROC AUC",
    "roc_auc": "ROC AUC",
    "average_precision": "Average precision",
    "map": "MAP",
    "mrr": "MRR",
    "ndcg": "NDCG",
    "loss": "loss",
}
# Longer names, for the model-index `metric_name` (F1 is qualified by `CrossEncoderModelCardData.metric_long_name`).
METRIC_NAMES = {"pearson": "Pearson correlation", "spearman": "Spearman correlation"}
# model-index `metric_type` when it is not the metric key itself.
METRIC_TYPES = {"auc": "roc_auc"}
LOSS_DESCRIPTIONS = {
    "bce": "binary cross-entropy on the logit",
    "mse": "mean squared error of sigmoid(logit)",
    "ce": "cross-entropy of the softmax over the logits",
    "cross_entropy": "cross-entropy of the softmax over the logits",
    "listwise": "listwise softmax cross-entropy over groups of passages of one query (one relevant, the others not)",
}
RANKING_EXTRAS = ("queries", "skipped_queries")


def template_path() -> Path:
    """The card template, ``hf_crossenc/model_card_template.md`` as the package carries it (a file in an installed wheel;
    in a checkout, a symlink to the top-level ``model_card_template.md``)."""
    path = Path(str(resources.files("hf_crossenc") / TEMPLATE_NAME))
    if not path.is_file():
        raise FileNotFoundError(f"{TEMPLATE_NAME} not found in the hf_crossenc package: {path}")
    return path


def is_secret(key: str) -> bool:
    """True for keys that may hold credentials (never written to a card)."""
    return any(marker in key.lower() for marker in SECRET_MARKERS)


def is_number(value: Any) -> bool:
    """A real, finite number (not None, not NaN, not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def metric_label(metric: str) -> str:
    """Short human name of an eval metric key: ``"spearman"`` → ``"Spearman"``, ``"mrr@10"`` → ``"MRR@10"``."""
    name, at, k = metric.partition("@")
    if at:
        return f"{METRIC_LABELS.get(name, name)}@{k}"
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def md_cell(value: Any) -> str:
    """Text for one Markdown table cell: pipes escaped, line breaks flattened."""
    return " ".join(str(value).replace("|", "\\|").split())


def format_metric(value: Any, digits: int = 4) -> str:
    """A metric value with `digits` decimals; NaN as ``NaN``, missing as an empty string."""
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return ""
    if math.isnan(value):
        return "NaN"
    return f"{float(value):.{digits}f}"


def format_count(value: Any) -> str:
    """A count (pairs, queries); missing as an empty string."""
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        return ""
    return str(int(value))


@dataclass
class CrossEncoderModelCardData(ModelCardData):
    """Everything the model card says. YAML keys go to the front matter; the rest fills the body.

    Task-dependent defaults are resolved when the card is rendered (so the task may still change after
    construction): ``pipeline_tag`` (``text-classification``, or ``text-ranking`` for reranking),
    ``metrics`` (Hub metric ids), ``metric_names`` (the eval metric keys shown) and ``best_metric``.

    Shapes filled by the training code:

    * ``eval_metrics[split] = {metric: value, ..., "n": pairs}``; reranking adds ``"queries"`` (evaluated)
      and ``"skipped_queries"`` (no relevant or no irrelevant candidate).
    * ``label_stats[split]``: regression ``{"min", "max", "mean", "std"}`` of the raw labels;
      classification ``{"counts": {label_name: n}}``; reranking ``{"queries": q, "positives": p, "negatives": n}``.
    * ``examples``: regression ``{text_a, text_b, gold (original scale), score (0–1), split}``;
      classification ``{text_a, text_b, gold (label name), predicted (label name), score, split}`` with
      score = probability of the positive label (binary) or of the predicted label (multi-class);
      reranking: the candidates of ONE query ``{text_a (query), text_b (passage), gold (0/1), score, split}``
      sorted by score, best first.
    """

    # Front matter (built by huggingface_hub)
    language: str | list[str] | None = "en"
    license: str | None = None
    library_name: str | None = "sentence-transformers"  # sentence_transformers.CrossEncoder loads it (so do transformers, hf_crossenc)
    pipeline_tag: str | None = None
    tags: list[str] = field(default_factory=lambda: list(BASE_TAGS))
    base_model: str | None = None
    datasets: list[str] | None = None
    metrics: list[str] | None = None
    model_name: str | None = None
    # Body
    model_id: str | None = None
    # A locally trained model this one started from (two-stage recipes); base_model is then its base.
    via_model: str | None = None
    task: str = "regression"
    activation: str = "sigmoid"
    label_scale: list[float] = field(default_factory=lambda: [0.0, 1.0])
    loss: str = "bce"
    max_length: int | None = None
    metric_names: list[str] = field(default_factory=list)
    best_metric: str | None = None
    label_names: list[str] | None = None
    threshold: float | None = None
    dataset_name: str | None = None
    split_sources: dict[str, str] = field(default_factory=dict)
    split_sizes: dict[str, int] = field(default_factory=dict)
    label_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    symmetric_train: str = "none"
    symmetric_inference: bool = False
    eval_metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    hyperparameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra_hyperparameters: dict[str, Any] = field(default_factory=dict)
    log_history: list[dict[str, Any]] = field(default_factory=list)
    best_step: int | None = None
    averaged_steps: list[int] | None = None
    averaged_with: list[dict[str, Any]] | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)
    train_runtime_s: float | None = None
    world_size: int | None = None
    plots: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # ModelCardData keeps unknown kwargs as attributes; the dataclass __init__ replaced its own.
        self.eval_results = None
        self.license_name = None
        self.license_link = None
        self.ignore_metadata_errors = False
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}: expected one of {', '.join(TASKS)}")
        for tag in (*BASE_TAGS, self.task, *(["reranker"] if self.task == "reranking" else [])):
            if tag not in self.tags:
                self.tags.append(tag)

    # ---- task ---------------------------------------------------------------------------

    def task_variant(self) -> str:
        """``"regression"``, ``"binary"`` (classification with one sigmoid logit), ``"multiclass"`` or ``"reranking"``."""
        if self.task == "classification":
            return "binary" if self.activation == "sigmoid" else "multiclass"
        return self.task

    def metric_keys(self) -> list[str]:
        """The eval metric keys shown, in order: `metric_names`, or the task's defaults."""
        return list(self.metric_names) or list(DEFAULT_METRICS[self.task_variant()])

    def best_metric_key(self) -> str:
        """The metric that picked the best checkpoint (``metric_for_best_model`` without its ``eval_`` prefix)."""
        best = self.best_metric or DEFAULT_METRIC[self.task]
        return best[len("eval_") :] if best.startswith("eval_") else best

    def log_metric_keys(self) -> list[str]:
        """Metric columns of the training log: the shown metrics, plus the best metric if it is another one."""
        keys = self.metric_keys()
        best = self.best_metric_key()
        return keys if best in keys or best == "loss" else [*keys, best]

    def interval_summary(self) -> dict[str, Any] | None:
        """The confidence intervals of `eval_metrics` (from `hf_crossenc.evaluation.bootstrap_intervals`) as table
        rows: ``{"level": "95%", "resamples", "resampled", "rows": [(split, ["low–high", ...] per shown metric)]}``,
        or None when no split has them (e.g. ``--bootstrap_resamples 0``). Level and resampled units come from the
        first split that has intervals (every split of a run uses the same)."""
        rows, first = [], None
        for split, metrics in self.eval_metrics.items():
            intervals = (metrics or {}).get("intervals")
            if not isinstance(intervals, dict):
                continue
            first = first or intervals
            bounds = intervals.get("bounds") or {}
            cells = []
            for key in self.metric_keys():
                low, high = (bounds.get(key) or [None, None])[:2]
                cells.append(f"{format_metric(low)} – {format_metric(high)}" if is_number(low) and is_number(high) else "")
            rows.append((split, cells))
        if first is None:
            return None
        level = first.get("level")
        return {
            "level": f"{100 * level:g}%" if is_number(level) else "",
            "resamples": first.get("resamples"),
            "resampled": first.get("resampled", "pairs"),
            "rows": rows,
        }

    def class_names(self) -> list[str]:
        """Label names in id order; a binary model without recorded names has ``["0", "1"]`` (as `classify` returns)."""
        if self.label_names:
            return [str(name) for name in self.label_names]
        return ["0", "1"] if self.task_variant() == "binary" else []

    def positive_label(self) -> str:
        """The label a binary model's score is the probability of (id 1)."""
        names = self.class_names()
        return names[1] if len(names) > 1 else "1"

    def negative_label(self) -> str:
        """The other label of a binary model (id 0)."""
        names = self.class_names()
        return names[0] if names else "0"

    def count_columns(self) -> list[str]:
        """Class-count columns of the training-data table: the label names, then any other counted class."""
        names = list(self.class_names())
        for stats in self.label_stats.values():
            for name in (stats or {}).get("counts", {}) or {}:
                if str(name) not in names:
                    names.append(str(name))
        return names

    def metric_header(self, metric: str) -> str:
        """Short human name of a metric for tables and sentences (F1 says which class or average)."""
        if metric == "f1" and self.task == "classification":
            return f'F1 (positive class "{self.positive_label()}")' if self.task_variant() == "binary" else "F1 (macro)"
        return metric_label(metric)

    def metric_long_name(self, metric: str) -> str:
        """Human name of a metric for the model-index."""
        if metric == "f1" and self.task == "classification":
            return f"F1 of {self.positive_label()}" if self.task_variant() == "binary" else "Macro F1"
        return METRIC_NAMES.get(metric, metric_label(metric))

    @staticmethod
    def metric_type(metric: str) -> str:
        """model-index `metric_type` of an eval metric key (the key itself unless mapped, e.g. auc → roc_auc)."""
        return METRIC_TYPES.get(metric, metric)

    # ---- front matter -------------------------------------------------------------------

    def resolved_pipeline_tag(self) -> str:
        """`pipeline_tag` as set, else the task's (``text-ranking`` for reranking, ``text-classification`` otherwise)."""
        return self.pipeline_tag or PIPELINE_TAGS[self.task]

    def resolved_metrics(self) -> list[str]:
        """The front matter's `metrics` as set, else the task's Hub metric ids."""
        return list(self.metrics) if self.metrics else list(DEFAULT_YAML_METRICS[self.task_variant()])

    def build_eval_results(self) -> list[EvalResult]:
        """One model-index result per (split, shown metric) with a finite value."""
        task_type, task_name = EVAL_TASKS[self.task]
        results = []
        for split, metrics in self.eval_metrics.items():
            for metric in self.metric_keys():
                value = (metrics or {}).get(metric)
                if not is_number(value):
                    continue
                results.append(
                    EvalResult(
                        task_type=task_type,
                        task_name=task_name,
                        dataset_type=self.dataset_name or "custom",
                        dataset_name=self.dataset_name or "custom pairs",
                        dataset_split=split,
                        metric_type=self.metric_type(metric),
                        metric_name=f"{self.metric_long_name(metric)} ({split})",
                        metric_value=round(float(value), 4),
                    )
                )
        return results

    def to_dict(self) -> dict[str, Any]:
        """Only the front-matter keys, converted by huggingface_hub (model-index from EvalResults)."""
        values = {key: getattr(self, key) for key in YAML_KEYS}
        values["pipeline_tag"] = self.resolved_pipeline_tag()
        values["metrics"] = self.resolved_metrics()
        eval_results = self.build_eval_results() or None
        if eval_results and not values["model_name"]:
            values["model_name"] = self.model_id or "cross-encoder"  # huggingface_hub requires a name for a model-index
        return ModelCardData(**values, eval_results=eval_results).to_dict()

    # ---- body helpers used by the template ----------------------------------------------

    def safe_hyperparameters(self) -> dict[str, dict[str, Any]]:
        """The hyperparameter table without anything that looks like a credential."""
        return {k: v for k, v in self.hyperparameters.items() if not is_secret(k)}

    def log_rows(self) -> list[dict[str, Any]]:
        """One row per evaluation: the mean training loss since the previous one, and the eval metrics.

        Without evaluations, one row per logged training loss. The row of `best_step` that holds the
        best metric gets ``best=True``.
        """
        eval_keys = ["eval_loss", *(f"eval_{m}" for m in self.log_metric_keys())]
        best_key = f"eval_{self.best_metric_key()}"
        rows: list[dict[str, Any]] = []
        losses: list[float] = []
        evaluated = any(key in e for e in self.log_history for key in eval_keys)
        for entry in self.log_history:
            step = entry.get("step")
            if step is None:
                continue
            if "loss" in entry:
                losses.append(float(entry["loss"]))
                if not evaluated:
                    rows.append({"step": step, "epoch": entry.get("epoch"), "loss": entry["loss"]})
            if any(key in entry for key in eval_keys):
                row = {"step": step, "epoch": entry.get("epoch")}
                if losses:
                    row["loss"] = sum(losses) / len(losses)
                    losses = []
                row.update({k: entry[k] for k in eval_keys if k in entry})
                rows.append(row)
        for row in rows:
            row["best"] = self.best_step is not None and row["step"] == self.best_step and best_key in row
        return rows

    def loss_points(self) -> list[tuple[int, float]]:
        """(step, training loss) of every logged training loss."""
        return [(e["step"], float(e["loss"])) for e in self.log_history if "loss" in e and "step" in e]

    def score_description(self) -> str:
        """What the model outputs and how it becomes a score (the "Output" row of the card)."""
        variant = self.task_variant()
        if variant == "binary":
            return f"one logit; `sigmoid(logit)` is the probability of the positive label `{self.positive_label()}`"
        if variant == "multiclass":
            count = len(self.class_names()) or "one"
            return (
                f"{count} logits, one per label; `softmax(logits)` gives the probability of each label (they sum to 1), "
                "the prediction is the most probable label"
            )
        if variant == "reranking":
            return "one logit; `sigmoid(logit)` is the relevance score of the passage to the query, in [0, 1]"
        low, high = self.label_scale
        if self.activation == "sigmoid":
            text = "one logit; `sigmoid(logit)` is the score in [0, 1]"
            if (low, high) != (0.0, 1.0):
                back = f"multiply by {high - low:g}" + (f" and add {low:g}" if low else "")
                text += f", trained on labels {low:g}–{high:g} mapped to 0–1 ({back} to get the original scale back)"
            return text
        return f"activation {self.activation}"

    def loss_description(self) -> str:
        """The training loss in words."""
        return LOSS_DESCRIPTIONS.get(self.loss, f"`{self.loss}`")


def framework_versions() -> dict[str, str]:
    versions = {"Python": platform.python_version(), "hf_crossenc": __version__}
    for name in ("transformers", "torch", "accelerate", "datasets", "tokenizers", "huggingface_hub", "safetensors"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


CARD_HYPERPARAMETERS = (
    "task",
    "loss",
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "warmup_steps",
    "weight_decay",
    "lr_scheduler_type",
    "optim",
    "max_grad_norm",
    "seed",
    "bf16",
    "fp16",
    "train_sampling_strategy",
    "eval_strategy",
    "save_strategy",
    "metric_for_best_model",
    "load_best_model_at_end",
    "average_checkpoints",
    "torch_compile",
)


def hyperparameter_table(args: Any, extra: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The recipe: the main training arguments with their hf_crossenc defaults (never tokens or paths)."""
    # Field defaults, read from the dataclass (instantiating TrainingArguments would reset accelerate's state).
    defaults: dict[str, Any] = {}
    for f in fields(type(args)):
        if f.default is not MISSING:
            defaults[f.name] = f.default.value if isinstance(f.default, Enum) else f.default
    current = args.to_dict()
    table = {}
    for key in CARD_HYPERPARAMETERS:
        if key in current and not is_secret(key):
            if key == "max_steps" and current[key] in (-1, None):
                continue
            table[key] = {"value": current[key], "default": defaults.get(key)}
    world = getattr(args, "world_size", 1)
    table["global_batch_size"] = {
        "value": args.per_device_train_batch_size * args.gradient_accumulation_steps * world,
        "default": None,
    }
    for key, value in (extra or {}).items():
        table[key] = {"value": value, "default": None}
    return table


def render_card(card: CrossEncoderModelCardData) -> ModelCard:
    """The card as a `ModelCard` (front matter from `card.to_dict()`, body from the template)."""
    versions = framework_versions()
    return ModelCard.from_template(
        card,
        template_path=str(template_path()),
        card=card,
        versions=versions,
        hyperparameters=card.safe_hyperparameters(),
        log_rows=card.log_rows(),
        repo=card.model_id,
        placeholder=MODEL_ID_PLACEHOLDER,
        cell=md_cell,
        fmt=format_metric,
        count=format_count,
        py=python_string,
        ref=model_reference,
    )


def model_reference(name: Any) -> str:
    """A model named in the card's prose: a name (Hub id, folder name) as code, an intermediate model in words."""
    return str(name) if name in DESCRIPTIONS else f"`{name}`"


def card_with_model_id(text: str, repo_id: str) -> str | None:
    """A generated card's text with its usage snippets pointed at `repo_id`; None when it has no placeholder left."""
    if MODEL_ID_PLACEHOLDER not in text:
        return None
    lines = [line for line in text.splitlines(keepends=True) if not line.startswith(MODEL_ID_COMMENT)]
    return "".join(lines).replace(f'"{MODEL_ID_PLACEHOLDER}"', f'"{repo_id}"')


def set_card_model_id(readme: str | Path, repo_id: str) -> bool:
    """Point the usage snippets of a card file at `repo_id` in place; True if the file changed. (Publishing does not
    call this: it uploads a copy, `card_with_model_id`, and leaves the folder's README.md as training wrote it.)"""
    path = Path(readme)
    if not path.is_file():
        return False
    text = card_with_model_id(path.read_text(encoding="utf-8"), repo_id)
    if text is None:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def write_card(card: CrossEncoderModelCardData, folder: str | Path, scores: Any = None, labels: Any = None) -> Path:
    """Render the card (and its plots, see `save_plots` for `scores` and `labels`) into `folder`/README.md."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    card.plots = save_plots(card, folder, scores, labels)
    path = folder / "README.md"
    render_card(card).save(path)
    return path


def eval_metrics_from_logs(card: CrossEncoderModelCardData, metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`card.eval_metrics` entries from Trainer metrics such as ``eval_spearman`` or ``test_map``.

    A prefix is a split (``eval`` is the validation split) when some ``<prefix>_<metric>`` key exists
    for a shown metric; nested prefixes (``eval_macro`` of ``eval_macro_f1`` when ``eval`` is one) are
    not splits. Each split gets its shown metrics, ``n`` (its pairs, from `split_sizes`) and, for
    reranking, ``queries`` and ``skipped_queries``.
    """
    names = card.metric_keys()
    prefixes = {key[: -len(name) - 1] for key in metrics for name in names if key.endswith(f"_{name}") and len(key) > len(name) + 1}
    prefixes = {p for p in prefixes if not any(p.startswith(f"{q}_") for q in prefixes)}
    out: dict[str, dict[str, Any]] = {}
    for prefix in sorted(prefixes):
        split = "validation" if prefix == "eval" else prefix
        values: dict[str, Any] = {name: metrics[f"{prefix}_{name}"] for name in names if f"{prefix}_{name}" in metrics}
        values["n"] = card.split_sizes.get(split)
        if card.task == "reranking":
            values.update({key: metrics[f"{prefix}_{key}"] for key in RANKING_EXTRAS if f"{prefix}_{key}" in metrics})
        out[split] = values
    return out


class CrossEncoderModelCardCallback(TrainerCallback):
    """Fills `CrossEncoderModelCardData` as training goes (hyperparameters, log history, best step)."""

    def __init__(self, card: CrossEncoderModelCardData, extra_hyperparameters: dict[str, Any] | None = None) -> None:
        self.card = card
        self.extra_hyperparameters = extra_hyperparameters or {}

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
        self.card.hyperparameters = hyperparameter_table(args, self.extra_hyperparameters)
        self.card.world_size = args.world_size

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        self._sync(state)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001
        self._sync(state)
        self.card.eval_metrics.update(eval_metrics_from_logs(self.card, metrics or {}))

    def on_save(self, args, state, control, **kwargs):  # noqa: ANN001
        self._sync(state)

    def _sync(self, state) -> None:  # noqa: ANN001
        self.card.log_history = list(state.log_history)
        # With --average_checkpoints the model is no single checkpoint: no "best" step to name.
        self.card.best_step = None if self.card.averaged_steps else getattr(state, "best_global_step", None)
