"""Model cards: `CrossEncoderModelCardData`, the callback that fills it, and rendering with plots.

The card is rendered from the top-level ``model_card_template.md`` through
``huggingface_hub.ModelCard.from_template``; the YAML front matter (including the model-index that
makes the Hub show evaluation results) is built by huggingface_hub from the card data, never by
hand. Values that are not known become HTML comments in the page instead of empty sections.
"""

from __future__ import annotations

import logging
import math
import platform
from dataclasses import MISSING, dataclass, field, fields
from enum import Enum
from importlib import metadata
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import TrainerCallback

from . import __version__

logger = logging.getLogger(__name__)

TEMPLATE_NAME = "model_card_template.md"
CURVE_PNG = "training_curve.png"
SCATTER_PNG = "eval_scatter.png"
YAML_KEYS = ("language", "license", "library_name", "pipeline_tag", "tags", "base_model", "datasets", "metrics", "model_name")
MODEL_ID_PLACEHOLDER = "path/to/this/model"
MODEL_ID_COMMENT = "<!-- model id: not known yet"
SECRET_MARKERS = ("token", "secret", "password", "api_key")
METRIC_NAMES = {"pearson": "Pearson correlation", "spearman": "Spearman correlation"}
SPLIT_NAMES = {"validation": "validation", "test": "test"}


def template_path() -> Path:
    """The card template: ``model_card_template.md`` at the repository root (shipped inside the package when installed)."""
    for candidate in (Path(__file__).resolve().parents[1] / TEMPLATE_NAME, Path(__file__).resolve().parent / TEMPLATE_NAME):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{TEMPLATE_NAME} not found next to the hf_crossenc package")


def is_secret(key: str) -> bool:
    return any(marker in key.lower() for marker in SECRET_MARKERS)


@dataclass
class CrossEncoderModelCardData(ModelCardData):
    """Everything the model card says. YAML keys go to the front matter; the rest fills the body."""

    # Front matter (built by huggingface_hub)
    language: str | list[str] | None = "en"
    license: str | None = None
    library_name: str | None = "transformers"
    pipeline_tag: str | None = "text-classification"
    tags: list[str] = field(default_factory=lambda: ["cross-encoder", "generated_from_trainer", "hf_crossenc"])
    base_model: str | None = None
    datasets: list[str] | None = None
    metrics: list[str] | None = None
    model_name: str | None = None
    # Body
    model_id: str | None = None
    task: str = "regression"
    activation: str = "sigmoid"
    label_scale: list[float] = field(default_factory=lambda: [0.0, 1.0])
    loss: str = "bce"
    max_length: int | None = None
    dataset_name: str | None = None
    split_sources: dict[str, str] = field(default_factory=dict)
    split_sizes: dict[str, int] = field(default_factory=dict)
    label_stats: dict[str, dict[str, float]] = field(default_factory=dict)
    symmetric_train: str = "none"
    eval_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    hyperparameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra_hyperparameters: dict[str, Any] = field(default_factory=dict)
    log_history: list[dict[str, Any]] = field(default_factory=list)
    best_step: int | None = None
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
        for tag in ("cross-encoder", "generated_from_trainer", "hf_crossenc", self.task):
            if tag not in self.tags:
                self.tags.append(tag)

    # ---- front matter -------------------------------------------------------------------

    def build_eval_results(self) -> list[EvalResult]:
        results = []
        for split, metrics in self.eval_metrics.items():
            for metric, value in metrics.items():
                if metric not in METRIC_NAMES or value is None or (isinstance(value, float) and math.isnan(value)):
                    continue
                results.append(
                    EvalResult(
                        task_type=self.pipeline_tag or "text-classification",
                        task_name="Semantic Similarity" if self.task == "regression" else self.task,
                        dataset_type=self.dataset_name or "custom",
                        dataset_name=self.dataset_name or "custom pairs",
                        dataset_split=split,
                        metric_type=metric,
                        metric_name=f"{METRIC_NAMES[metric]} ({split})",
                        metric_value=round(float(value), 4),
                    )
                )
        return results

    def to_dict(self) -> dict[str, Any]:
        """Only the front-matter keys, converted by huggingface_hub (model-index from EvalResults)."""
        card = ModelCardData(
            **{key: getattr(self, key) for key in YAML_KEYS},
            eval_results=self.build_eval_results() or None,
        )
        if card.eval_results and not card.model_name:
            card.model_name = self.model_id or "cross-encoder"
        return card.to_dict()

    # ---- body helpers used by the template ----------------------------------------------

    def safe_hyperparameters(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.hyperparameters.items() if not is_secret(k)}

    def log_rows(self) -> list[dict[str, Any]]:
        """One row per evaluation: the mean training loss since the previous one, and the eval metrics.

        Without evaluations, one row per logged training loss.
        """
        rows: list[dict[str, Any]] = []
        losses: list[float] = []
        evaluated = any("eval_spearman" in e or "eval_loss" in e for e in self.log_history)
        for entry in self.log_history:
            step = entry.get("step")
            if step is None:
                continue
            if "loss" in entry:
                losses.append(float(entry["loss"]))
                if not evaluated:
                    rows.append({"step": step, "epoch": entry.get("epoch"), "loss": entry["loss"]})
            if any(key in entry for key in ("eval_loss", "eval_pearson", "eval_spearman")):
                row = {"step": step, "epoch": entry.get("epoch")}
                if losses:
                    row["loss"] = sum(losses) / len(losses)
                    losses = []
                row.update({k: entry[k] for k in ("eval_loss", "eval_pearson", "eval_spearman") if k in entry})
                rows.append(row)
        for row in rows:
            row["best"] = self.best_step is not None and row["step"] == self.best_step and "eval_spearman" in row
        return rows

    def loss_points(self) -> list[tuple[int, float]]:
        return [(e["step"], float(e["loss"])) for e in self.log_history if "loss" in e and "step" in e]

    def score_description(self) -> str:
        low, high = self.label_scale
        if self.activation == "sigmoid":
            text = "one logit; `sigmoid(logit)` is the score in [0, 1]"
            if (low, high) != (0.0, 1.0):
                back = f"multiply by {high - low:g}" + (f" and add {low:g}" if low else "")
                text += f", trained on labels {low:g}–{high:g} mapped to 0–1 ({back} to get the original scale back)"
            return text
        return f"activation {self.activation}"


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


def save_plots(card: CrossEncoderModelCardData, folder: Path, scores: Any = None, labels: Any = None) -> list[str]:
    """Training curve (loss and eval Spearman by step) and predicted-vs-gold scatter, as PNGs in `folder`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    loss_points = card.loss_points()
    eval_rows = [r for r in card.log_rows() if "eval_spearman" in r]
    if loss_points or eval_rows:
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
        if loss_points:
            ax.plot([p[0] for p in loss_points], [p[1] for p in loss_points], color="tab:blue", label="training loss")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss", color="tab:blue")
        if eval_rows:
            ax2 = ax.twinx()
            ax2.plot(
                [r["step"] for r in eval_rows], [r["eval_spearman"] for r in eval_rows], "o-", color="tab:orange", label="eval Spearman"
            )
            ax2.set_ylabel("validation Spearman", color="tab:orange")
        ax.set_title("Training curve")
        fig.tight_layout()
        fig.savefig(folder / CURVE_PNG)
        plt.close(fig)
        written.append(CURVE_PNG)
    if scores is not None and labels is not None and len(scores):
        low, high = card.label_scale
        fig, ax = plt.subplots(figsize=(4.8, 4.4), dpi=110)
        gold = [low + (high - low) * float(v) for v in labels]
        pred = [low + (high - low) * float(v) for v in scores]
        ax.scatter(gold, pred, s=6, alpha=0.35)
        ax.plot([low, high], [low, high], color="grey", linewidth=1)
        ax.set_xlabel(f"gold label ({low:g}–{high:g})")
        ax.set_ylabel("predicted score (same scale)")
        ax.set_title(f"Validation: predicted vs gold (n={len(scores)})")
        fig.tight_layout()
        fig.savefig(folder / SCATTER_PNG)
        plt.close(fig)
        written.append(SCATTER_PNG)
    return written


def render_card(card: CrossEncoderModelCardData) -> ModelCard:
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
    )


def set_card_model_id(readme: str | Path, repo_id: str) -> bool:
    """Point the usage snippets of a generated card at `repo_id` (done by publish); True if the file changed."""
    path = Path(readme)
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    if MODEL_ID_PLACEHOLDER not in text:
        return False
    lines = [line for line in text.splitlines(keepends=True) if not line.startswith(MODEL_ID_COMMENT)]
    path.write_text("".join(lines).replace(f'"{MODEL_ID_PLACEHOLDER}"', f'"{repo_id}"'), encoding="utf-8")
    return True


def write_card(card: CrossEncoderModelCardData, folder: str | Path, scores: Any = None, labels: Any = None) -> Path:
    """Render the card (and its plots) into `folder`/README.md."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    card.plots = save_plots(card, folder, scores, labels)
    path = folder / "README.md"
    render_card(card).save(path)
    return path


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
        for key, value in (metrics or {}).items():
            if key.endswith("_spearman"):
                prefix = key[: -len("_spearman")]
                split = "validation" if prefix == "eval" else prefix
                self.card.eval_metrics[split] = {
                    "pearson": metrics.get(f"{prefix}_pearson", math.nan),
                    "spearman": value,
                    "n": self.card.split_sizes.get(split),
                }

    def on_save(self, args, state, control, **kwargs):  # noqa: ANN001
        self._sync(state)

    def _sync(self, state) -> None:  # noqa: ANN001
        self.card.log_history = list(state.log_history)
        self.card.best_step = getattr(state, "best_global_step", None)
