"""Checkpoint averaging (``--average_checkpoints``): the final model is the uniform average of the
weights at the end of every epoch, instead of the single checkpoint that scored best on dev.

On a small training set at a high learning rate (TREC QA: 93 questions, lr 1e-4) the dev score
swings from epoch to epoch, and the best of those noisy evaluations is partly luck. Averaging the
epoch-end weights (all from one run, so they lie in one basin of the loss) smooths that out without
choosing anything on dev.

The running sum lives in memory (one fp32 copy of the trainable parameters) and is written into each
checkpoint as ``weight_average.safetensors``, so ``--resume`` continues it.

A seed soup (``--average_with`` / ``--soup_seeds``) goes one step further: runs of the same recipe from the
same starting model with different seeds are averaged too, uniformly over the models.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .checkpoints import AVERAGE_FILE
from .errors import ConfigError

logger = logging.getLogger(__name__)


def check_members(folders: list[str], model: torch.nn.Module) -> None:
    """Raise `ConfigError` unless every folder's model.safetensors holds each trainable tensor of `model` with its shape
    (read from the file headers only: cheap enough to call before anything is written)."""
    wanted = {name: tuple(param.shape) for name, param in model.named_parameters() if param.requires_grad}
    for folder in folders:
        path = Path(folder) / "model.safetensors"
        if not path.is_file():
            raise ConfigError(f"--average_with: {folder} has no model.safetensors (pass folders written by training).")
        with safe_open(str(path), framework="pt") as f:
            names = set(f.keys())
            for name, shape in wanted.items():
                if name not in names:
                    raise ConfigError(f"--average_with: {path} has no tensor {name!r}: it is not the architecture being trained.")
                found = tuple(f.get_slice(name).get_shape())
                if found != shape:
                    raise ConfigError(f"--average_with: {path}: tensor {name!r} has shape {found}, the model being trained has {shape}.")


def load_members(folders: list[str], model: torch.nn.Module) -> list[dict[str, torch.Tensor]]:
    """The trainable weights of each soup member (fp32), checked against `model` (names, shapes)."""
    check_members(folders, model)
    wanted = [name for name, param in model.named_parameters() if param.requires_grad]
    members = []
    for folder in folders:
        weights = load_file(Path(folder) / "model.safetensors")
        members.append({name: weights[name].float() for name in wanted})
    return members


class WeightAverageCallback(TrainerCallback):
    """Sums the trainable weights at each epoch's end (``epochs=True``); at the end of training loads their mean
    into the model (or keeps the weights training ended with), averaged with the weights of `members`."""

    def __init__(
        self, epochs: bool = True, members: list[dict[str, torch.Tensor]] | None = None, member_names: list[str] | None = None
    ) -> None:
        self.epochs = epochs
        self.members = list(members or [])  # from load_members, checked before training starts
        self.member_folders = list(member_names or [])
        self.total: dict[str, torch.Tensor] = {}
        self.steps: list[int] = []
        self.resume_from: str | None = None  # set by CrossEncoderTrainer.train from its resume_from_checkpoint

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # Trainer has restored a resumed run's state by now (global_step is the checkpoint's), so the
        # running sum comes from the checkpoint resumed from — even the last one, after which no step runs.
        self.total, self.steps = {}, []
        if not (self.epochs and state.global_step > 0):
            return
        checkpoint = Path(self.resume_from or Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        path = checkpoint / AVERAGE_FILE
        if not path.is_file():
            raise ConfigError(
                f"--average_checkpoints: {checkpoint} has no {AVERAGE_FILE} (it was written without "
                "--average_checkpoints, or cut off before it), so the epochs before it cannot be averaged."
            )
        self.total = load_file(path)
        with safe_open(str(path), framework="pt") as f:
            self.steps = json.loads((f.metadata() or {}).get("steps", "[]"))

    def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not self.epochs or state.global_step in self.steps:
            return
        with torch.no_grad():
            for name, param in model.named_parameters():
                if not param.requires_grad:
                    continue
                if name in self.total:
                    self.total[name].add_(param.detach().float())
                else:
                    self.total[name] = param.detach().float().clone()
        self.steps.append(state.global_step)
        # With --save_strategy steps, the checkpoint of an epoch's last step was saved just before this:
        # write the sum again so that resuming from it counts this epoch.
        self._write(args, state)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._write(args, state)

    def _write(self, args: Any, state: Any) -> None:
        """The running sum (empty before the first epoch ends) into checkpoint-{step}, if that checkpoint exists;
        written to a temporary name first, so a checkpoint never holds a truncated one."""
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if not (self.epochs and state.is_world_process_zero and folder.is_dir()):
            return
        partial = folder / (AVERAGE_FILE + ".partial")
        save_file(self.total, str(partial), metadata={"steps": json.dumps(self.steps)})
        partial.replace(folder / AVERAGE_FILE)

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        params = {name: param for name, param in model.named_parameters() if param.requires_grad}
        if self.epochs and not self.steps:
            logger.warning("--average_checkpoints: no epoch ended, the model keeps its last weights")
        with torch.no_grad():
            for name, param in params.items():
                own = self.total[name] / len(self.steps) if self.epochs and self.steps else param.detach().float()
                param.copy_((own + sum(member[name] for member in self.members)) / (1 + len(self.members)))
        if self.epochs and self.steps:
            logger.info("final weights: the uniform average of the weights at steps %s (the end of each epoch)", self.steps)
        if self.members:
            logger.info("final weights: averaged with %s (uniformly over %d models)", ", ".join(self.member_folders), 1 + len(self.members))
