"""What the commands share: the exit-code convention, the model and column flags, and loading a model."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any

from ..errors import UserInputError

EPILOG = "Exit codes: 0 success, 2 bad input (data, flags, paths), 1 unexpected failure."


def exit_code_of(command: Callable[[Any], Any], argument: Any) -> int:
    """Run a command; bad input (`UserInputError`) becomes one `error:` line on stderr and its exit code (2)."""
    try:
        result = command(argument)
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return result if isinstance(result, int) else 0


def _number_type(kind: type, allowed: Callable[[float], bool], wanted: str) -> Callable[[str], Any]:
    """An argparse ``type=``: the text as `kind` (int or a finite float) if `allowed`, else argparse's exit 2 naming the
    flag (``argument --batch_size: must be at least 1, got 0``) before anything is loaded."""

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if not (math.isfinite(value) and allowed(value)):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its own messages
    return convert


positive_int = _number_type(int, lambda v: v >= 1, "a whole number, at least 1")
non_negative_int = _number_type(int, lambda v: v >= 0, "a whole number, 0 or more")
non_negative_float = _number_type(float, lambda v: v >= 0, "a number, 0 or more")
finite_float = _number_type(float, lambda v: True, "a finite number")
probability = _number_type(float, lambda v: 0 < v < 1, "a number between 0 and 1 (exclusive)")


def add_column_flags(parser: argparse.ArgumentParser, precision: str = "auto") -> None:
    """`--text_a_column`, `--text_b_column`, then the model flags (`add_model_flags`)."""
    parser.add_argument("--text_a_column", default=None, help="first text column (default: auto-detect)")
    parser.add_argument("--text_b_column", default=None, help="second text column (default: auto-detect)")
    add_model_flags(parser, precision)


PRECISION_HELP = {
    "auto": "auto (default: bf16 where the hardware computes it natively — AVX512-BF16/AMX CPUs, bf16 GPUs — else fp32), "
    "bf16 (weights and forward in bf16: scores within ~1e-3 of fp32), or fp32 (the exact scores of plain transformers)",
    "fp32": "fp32 (default: the exact scores of plain transformers, so the metrics reproduce the job's results.json), "
    "bf16 (weights and forward in bf16: faster on AVX512-BF16/AMX CPUs and GPUs), or auto (bf16 where native)",
}


def add_model_flags(parser: argparse.ArgumentParser, precision: str = "auto") -> None:
    """How a trained cross-encoder is loaded: `--trust_pickle_weights`, `--precision` (default `precision`: `auto` for
    predict and rank, where speed counts; `fp32` for evaluate, whose metrics must reproduce results.json), `--cpu_kernel_cache`."""
    parser.add_argument(
        "--trust_pickle_weights", action="store_true", help="allow a model stored as pickle (pytorch_model.bin): unpickling can run code"
    )
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16", "auto"],
        default=precision,
        help=PRECISION_HELP[precision],
    )
    parser.add_argument(
        "--cpu_kernel_cache",
        type=non_negative_int,
        default=256,
        help="bf16 on CPU: keep at most this many compiled oneDNN kernels in each of PyTorch's two kernel caches "
        "(ONEDNN_PRIMITIVE_CACHE_CAPACITY, LRU_CACHE_CAPACITY; a value already in the environment wins; 0 leaves PyTorch's "
        "default of 1024). Each kernel holds ~0.5 MB; long inputs meet many shapes (default: 256, as training)",
    )


def load_predictor(args: argparse.Namespace, model: str | None = None, flag: str = "model") -> Any:
    """Bound the CPU kernel caches (before the first bf16 kernel is built), then load `model` (default: `args.model`)
    with the model flags of `add_model_flags`; one that cannot be loaded is a `UserInputError` naming `flag`."""
    from ..inference import CrossEncoderPredictor
    from ..memory import bound_kernel_caches

    try:
        bound_kernel_caches(args.cpu_kernel_cache)
    except ValueError as err:  # a negative capacity
        raise UserInputError(str(err)) from err
    return CrossEncoderPredictor.from_pretrained(
        args.model if model is None else model, trust_pickle_weights=args.trust_pickle_weights, precision=args.precision, flag=flag
    )


class _DeprecatedSwitch(argparse.BooleanOptionalAction):
    """An old spelling of a renamed switch: works as the new one, with a warning (for one release)."""

    def __init__(self, *args: Any, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(*args, **kwargs)

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None
    ) -> None:
        new = f"--no-{self.new}" if option_string and option_string.startswith("--no-") else f"--{self.new}"
        print(f"warning: {option_string} is deprecated and will be removed in the next release: use {new}", file=sys.stderr)
        super().__call__(parser, namespace, values, option_string)


def add_both_orders_flag(parser: argparse.ArgumentParser) -> None:
    """--both_orders / --no-both_orders (and the deprecated --symmetric / --no-symmetric): dest ``both_orders``."""
    parser.add_argument(
        "--both_orders",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average the scores of (a, b) and (b, a) (default: what the model recorded, hf_crossenc.symmetric in config.json)",
    )
    parser.add_argument(
        "--symmetric", dest="both_orders", action=_DeprecatedSwitch, new="both_orders", default=None, help=argparse.SUPPRESS
    )
