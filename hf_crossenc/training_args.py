"""`CrossEncoderTrainingArguments`: `transformers.TrainingArguments` with cross-encoder defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from .errors import ConfigError
from .tasks import DEFAULT_LOSS, DEFAULT_METRIC, LOSSES, TASK_LOSSES, TASKS
from .validation import check_values


def bf16_is_fast(use_cpu: bool = False) -> bool:
    """True where bf16 matmuls run natively: a bf16-capable GPU, or a CPU with AVX512-BF16 or AMX."""
    if torch.cuda.is_available() and not use_cpu:
        return torch.cuda.is_bf16_supported()
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def configure_cpu_threads(requested: int | None) -> int:
    """Set torch's intra-op threads; returns the number used.

    `accelerate launch` without `--num_cpu_threads_per_process` (and without `--cpu`) exports
    OMP_NUM_THREADS=1, which leaves all but one core idle on a CPU machine. In that case (and
    without a GPU) the available cores are shared among the processes of this machine instead.
    """
    import os

    if requested is not None:
        if requested < 1:
            raise ValueError(f"--cpu_threads must be at least 1, got {requested}")
        torch.set_num_threads(requested)
        return requested
    launched_by_accelerate = any(key.startswith("ACCELERATE_") for key in os.environ)
    if launched_by_accelerate and os.environ.get("OMP_NUM_THREADS") == "1" and not has_accelerator():
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
        threads = max(1, cores // max(1, local))
        if threads > torch.get_num_threads():
            torch.set_num_threads(threads)
    return torch.get_num_threads()


def split_list(value: str | None) -> list[str]:
    """A comma-separated flag value as a list: 'a, b,,c' -> ['a', 'b', 'c'] (None or '' -> [])."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def reporting_integrations(report_to: str | list[str] | None) -> str | list[str]:
    """``--report_to`` checked early (before any data is read): 'none', 'all' or a list of transformers' integration
    names ('tensorboard,wandb' splits at the commas); ValueError for an unknown name, or for tensorboard not installed."""
    from transformers.integrations import INTEGRATION_TO_CALLBACK, is_tensorboard_available

    if report_to is None or report_to in ("none", "all", ["none"], ["all"]):
        return "none" if report_to is None else report_to
    names = split_list(report_to) if isinstance(report_to, str) else [str(name).strip() for name in report_to]
    unknown = [name for name in names if name not in INTEGRATION_TO_CALLBACK]
    if unknown:
        known = ", ".join(sorted(INTEGRATION_TO_CALLBACK))
        raise ValueError(f"--report_to {','.join(unknown)}: not an integration of transformers; use 'none', 'all' or some of {known}")
    if "tensorboard" in names and not is_tensorboard_available():
        raise ValueError("--report_to tensorboard needs the tensorboard package: pip install tensorboard")
    return names


def has_accelerator() -> bool:
    """A CUDA, MPS or XPU device is available."""
    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return torch.cuda.is_available() or bool(mps and mps.is_available()) or bool(xpu and xpu.is_available())


@dataclass
class CrossEncoderTrainingArguments(TrainingArguments):
    """Training arguments of hf_crossenc.

    Adds the task and loss, and changes defaults that matter for cross-encoders: evaluation and
    checkpoints every epoch, the best checkpoint by the task's validation metric, batches grouped by token length,
    and no column removal (the collator needs the raw texts).
    """

    task: str = field(
        default="regression",
        metadata={
            "help": "What the model learns: 'regression' (similarity scores on a 0–1 scale after --label_scale), "
            "'classification' (pair classes: binary or multi-class) or 'reranking' (query–passage relevance, grouped by query).",
            "choices": list(TASKS),
        },
    )
    loss: str | None = field(
        default=None,
        metadata={
            "help": "regression: 'bce' (default; binary cross-entropy on the logit) or 'mse' (squared error of sigmoid(logit)); "
            "classification: 'bce' (binary, the default for 0/1 labels) or 'ce' (softmax cross-entropy, multi-class); "
            "reranking: 'listwise' (default; softmax cross-entropy over a query's positive and --train_group_size-1 negatives) "
            "or 'bce' (pointwise).",
            "choices": list(LOSSES),
        },
    )
    cpu_threads: int | None = field(
        default=None,
        metadata={
            "help": "CPU threads per process (torch.set_num_threads). Default: all available cores divided among the local "
            "processes when `accelerate launch` left OMP_NUM_THREADS at its own default of 1; otherwise torch's choice."
        },
    )
    cpu_kernel_cache: int = field(
        default=256,
        metadata={
            "help": "CPU memory: oneDNN's and ideep's caches of compiled bf16 kernels (one per operation and input shape; "
            "PyTorch keeps up to 1024 in each) hold at most this many each (ONEDNN_PRIMITIVE_CACHE_CAPACITY and "
            "LRU_CACHE_CAPACITY, set for the run unless already in the environment). 0 leaves PyTorch's default."
        },
    )
    fast_dropout: bool | None = field(
        default=None,
        metadata={
            "help": "CPU training: draw dropout masks with a cheaper RNG path (same distribution; ~7%% faster steps). "
            "Default: on when training on CPU. See hf_crossenc.fast_dropout."
        },
    )
    recompute_above_tokens: int = field(
        default=0,
        metadata={
            "help": "Memory: a training batch of more tokens than this (per device, padding included) keeps about as many "
            "activations for the backward pass as a batch of this many tokens: its bottom layers recompute theirs "
            "in the backward pass instead (activation checkpointing for the longest batches only). The same "
            "gradients; one more forward of those layers. 0 (default): off. See hf_crossenc.modeling.recompute_layers."
        },
    )
    train_group_size: int = field(
        default=8,
        metadata={"help": "Reranking with --loss listwise: passages per training group (1 positive + N-1 negatives)."},
    )
    resume: bool = field(
        default=False,
        metadata={
            "help": "Continue an interrupted run from the newest complete checkpoint in --output_dir (half-written ones are skipped)."
        },
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow training into an output directory that already holds files."}
    )
    output_dir: str | None = field(
        default="outputs/stsb-minilm-cross-encoder",
        metadata={"help": "Where checkpoints, the final model and results.json are written."},
    )
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak AdamW learning rate."})
    num_train_epochs: float = field(default=3.0, metadata={"help": "Number of training epochs."})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Training batch size per process."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Evaluation batch size per process."})
    warmup_steps: float = field(default=0.1, metadata={"help": "Warmup: a ratio of total steps if < 1, else steps."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate on the validation split: 'no', 'steps' or 'epoch'."})
    bootstrap_resamples: int = field(
        default=1000,
        metadata={
            "help": "Resamples for the 95 percent bootstrap confidence intervals of the saved model's metrics in results.json "
            "and the model card (pairs resampled, or queries for reranking); 0 leaves them out."
        },
    )
    save_strategy: str = field(default="epoch", metadata={"help": "When to save checkpoints: 'no', 'steps', 'epoch' or 'best'."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep at most this many checkpoints (the best is kept)."})
    load_best_model_at_end: bool = field(
        default=True, metadata={"help": "Finish with the checkpoint that scored best on the validation split."}
    )
    average_checkpoints: bool = field(
        default=False,
        metadata={
            "help": "Finish with the uniform average of the weights at the end of every epoch instead of the best checkpoint "
            "(replaces --load_best_model_at_end; see hf_crossenc.averaging)."
        },
    )
    average_with: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated model folders (the same architecture, trained the same way, e.g. with other seeds) whose "
            "weights are averaged with this run's final weights, uniformly over the models: a seed soup. See --soup_seeds."
        },
    )
    soup_seeds: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated seeds, e.g. 42,1234,7: train the recipe once per seed (the others in OUTPUT_DIR/soup/seed-S) "
            "and finish with the uniform average of their weights (--average_with), evaluated and saved like any run."
        },
    )
    metric_for_best_model: str | None = field(
        default=None,
        metadata={
            "help": "Validation metric that picks the best checkpoint. Default by task: spearman (regression), "
            "accuracy (classification), map (reranking; also mrr@10, ndcg@10)."
        },
    )
    logging_steps: float = field(default=50, metadata={"help": "Log the training loss every N steps."})
    train_sampling_strategy: str = field(
        default="group_by_length",
        metadata={
            "help": "'group_by_length' (default: batches of similar token length, ~2x less padding), 'random', 'sequential'.",
            "choices": ["random", "sequential", "group_by_length", "batch_rebalance"],
        },
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep False: the collator reads the text columns."})
    bf16: bool | None = field(
        default=None,
        metadata={
            "help": "bf16 autocast. Default (unset): on when the hardware computes bf16 natively "
            "(a GPU with bf16, or a CPU with AVX512-BF16/AMX), else off."
        },
    )
    report_to: None | str | list[str] = field(
        default="none",
        metadata={
            "help": "Experiment tracking: where the training loss and evaluation metrics are logged. 'none' (default): nowhere "
            "but the console and trainer_state.json; 'tensorboard': OUTPUT_DIR/runs/ (needs `pip install tensorboard`; "
            "`hf-crossenc publish --include_logs` uploads it, and the Hub shows it in the model's Training metrics tab); "
            "or any of transformers' integrations, comma-separated: azure_ml, clearml, codecarbon, comet_ml, dagshub, "
            "dvclive, flyte, kubeflow, mlflow, neptune, swanlab, tensorboard, trackio, wandb; 'all': every one installed."
        },
    )

    def __post_init__(self) -> None:
        """Our values first (`hf_crossenc.validation.RANGES` and the choices: `ConfigError` naming the flag), then
        transformers' own checks, whose ValueErrors become `ConfigError` too (no traceback, on every path)."""
        check_values(self)
        if self.metric_for_best_model is None:
            self.metric_for_best_model = DEFAULT_METRIC[self.task]
        if self.loss is None:
            self.loss = DEFAULT_LOSS.get(self.task)  # classification: decided from the labels (bce or ce)
        if self.loss is not None and self.loss not in TASK_LOSSES[self.task]:
            raise ConfigError(f"--loss {self.loss} does not fit --task {self.task}: use one of {TASK_LOSSES[self.task]}")
        if str(getattr(self.eval_strategy, "value", self.eval_strategy)) == "no" and self.load_best_model_at_end:
            self.load_best_model_at_end = False  # our default needs evaluations; without them the last checkpoint is kept
        if self.average_checkpoints and self.load_best_model_at_end:
            self.load_best_model_at_end = False  # the averaged weights are the final model
        if self.bf16 is None:
            self.bf16 = bf16_is_fast(self.use_cpu)
        if not has_accelerator():
            # Without a GPU, transformers needs use_cpu for bf16 autocast, and for DDP across CPU processes
            # (`accelerate launch --multi_gpu --num_processes 2`): otherwise each rank trains alone.
            self.use_cpu = True
        if self.fast_dropout is None:
            self.fast_dropout = bool(self.use_cpu)
        try:
            self.report_to = reporting_integrations(self.report_to)
            super().__post_init__()
        except ConfigError:
            raise
        except ValueError as err:
            raise ConfigError(f"invalid arguments: {err}") from None
        if self.remove_unused_columns:
            raise ConfigError("--remove_unused_columns must stay False: the collator tokenizes the text columns")
