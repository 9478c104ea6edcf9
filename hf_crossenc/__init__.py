"""hf_crossenc: fine-tune cross-encoders with the Hugging Face Trainer and publish them to the Hub."""

__version__ = "0.1.0"

from .data_collator import CrossEncoderDataCollator  # noqa: E402
from .inference import CrossEncoderPredictor  # noqa: E402
from .trainer import CrossEncoderTrainer  # noqa: E402
from .training_args import CrossEncoderTrainingArguments  # noqa: E402

__all__ = [
    "CrossEncoderDataCollator",
    "CrossEncoderPredictor",
    "CrossEncoderTrainer",
    "CrossEncoderTrainingArguments",
    "__version__",
]
