"""How a bi-encoder turns token embeddings into one sentence embedding, read from its sentence-transformers files.

A sentence-transformers model folder says how it pools: ``modules.json`` lists its modules, the
``sentence_transformers...Pooling`` one points at a folder (usually ``1_Pooling``) whose ``config.json`` names the mode
(``"pooling_mode": "cls"``, or the older ``pooling_mode_cls_token: true`` / ``pooling_mode_mean_tokens`` /
``pooling_mode_max_tokens`` flags), and a ``...Normalize`` module means L2-normalised output. The bge family pools the
CLS token, all-MiniLM-L6-v2 the attention-masked mean. `resolve_pooling` reads that (or takes the mode the user forces);
`pool` computes it. Embeddings are always L2-normalised here: the bi-encoder's score is their cosine.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError

logger = logging.getLogger(__name__)

POOLING_MODES = ("mean", "cls", "max")
"""The pooling modes the bi-encoder computes."""
POOLING_CHOICES = ("auto", *POOLING_MODES)
"""``--teacher_pooling``: auto reads the model's sentence-transformers files (mean pooling when it has none)."""
MODULES_FILE = "modules.json"
POOLING_DIR = "1_Pooling"
LEGACY_MODE_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
"""sentence-transformers' older per-mode flags in a Pooling config, and the mode each one names."""
MODULES_READ = ("Transformer", "Pooling", "Normalize")
"""sentence-transformers module classes the bi-encoder reproduces (any other one would change the embeddings)."""


@dataclass(frozen=True)
class Pooling:
    """The pooling of a bi-encoder: ``mode`` (mean, cls or max), whether the model itself L2-normalises its output
    (``normalize``; the embeddings here always are), and where this was read (``origin``, for logs and errors)."""

    mode: str = "mean"
    normalize: bool = True
    origin: str = "assumed"

    def describe(self) -> str:
        norm = "L2-normalised" if self.normalize else "not normalised by the model (cosines normalise anyway)"
        return f"{self.mode} pooling, {norm} ({self.origin})"


def resolve_pooling(name_or_path: str, requested: str = "auto", flag: str = "--teacher") -> Pooling:
    """The pooling of the bi-encoder at `name_or_path` (a folder or a Hub id): `requested` when it names a mode,
    else read from its sentence-transformers files, else mean pooling (`Pooling.origin` says it was assumed).
    An unknown or unsupported pooling is a `ConfigError` naming `flag` and the file."""
    if requested not in POOLING_CHOICES:
        raise ConfigError(f"{flag} pooling must be one of {', '.join(POOLING_CHOICES)}, got {requested!r}.")
    if requested != "auto":
        return Pooling(requested, normalize=True, origin="chosen by the user")
    modules_file = _model_file(name_or_path, MODULES_FILE)
    if modules_file is None:
        return Pooling("mean", normalize=True, origin=f"assumed: no sentence-transformers {MODULES_FILE} in {name_or_path}")
    return read_pooling(name_or_path, modules_file, flag)


def read_pooling(name_or_path: str, modules_file: Path, flag: str) -> Pooling:
    """The pooling that a sentence-transformers ``modules.json`` (and the config of its Pooling module) describes."""
    where = f"{flag} {name_or_path}: {MODULES_FILE}"
    modules = _read_json(modules_file, where)
    if not isinstance(modules, list) or not all(isinstance(m, dict) and isinstance(m.get("type"), str) for m in modules):
        raise ConfigError(f"{where} is not a list of modules with a 'type'.")
    kinds = [m["type"].rsplit(".", 1)[-1] if m["type"].startswith("sentence_transformers.") else m["type"] for m in modules]
    unsupported = [m["type"] for m, kind in zip(modules, kinds) if kind not in MODULES_READ]
    if unsupported:
        raise ConfigError(
            f"{where} lists {', '.join(unsupported)}: the bi-encoder reproduces only a transformer with pooling (and "
            "normalisation), so its embeddings would differ from this model's. Use another bi-encoder."
        )
    pooling_modules = [m for m, kind in zip(modules, kinds) if kind == "Pooling"]
    if len(pooling_modules) != 1:
        raise ConfigError(f"{where} lists {len(pooling_modules)} Pooling modules; the bi-encoder needs exactly one.")
    folder = str(pooling_modules[0].get("path") or POOLING_DIR)
    config_name = f"{folder}/config.json"
    config_file = _model_file(name_or_path, config_name)
    if config_file is None:
        raise ConfigError(f"{flag} {name_or_path}: {MODULES_FILE} names a Pooling module but {config_name} is missing.")
    mode = pooling_mode(_read_json(config_file, f"{flag} {name_or_path}: {config_name}"), f"{flag} {name_or_path}: {config_name}")
    return Pooling(mode, normalize="Normalize" in kinds, origin=f"{config_name} of {name_or_path}")


def pooling_mode(config: Any, where: str) -> str:
    """The one pooling mode of a sentence-transformers Pooling config (its ``pooling_mode`` or the older flags), if it
    is one the bi-encoder computes; several modes at once or another mode is a `ConfigError` naming `where`."""
    if not isinstance(config, dict):
        raise ConfigError(f"{where} is not a JSON object.")
    if "pooling_mode" in config:
        raw = config["pooling_mode"]
        modes = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list) else [repr(raw)]
    else:
        modes = [mode for key, mode in LEGACY_MODE_KEYS.items() if config.get(key)]
        modes = modes or ["mean"]  # sentence-transformers' own default when no flag is set
    if len(modes) != 1 or modes[0] not in POOLING_MODES:
        asked = " + ".join(str(m) for m in modes)
        raise ConfigError(
            f"{where} asks for {asked} pooling; the bi-encoder computes one of {', '.join(POOLING_MODES)}: use another "
            "bi-encoder (or, for --teacher, force a mode with --teacher_pooling if you know it fits)."
        )
    return modes[0]


def _read_json(path: Path, where: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{where} cannot be read: {err}.") from None


def _model_file(name_or_path: str, filename: str) -> Path | None:
    """`filename` of a model folder, or of a Hub model (downloaded, or from the cache offline); None when the model has
    no such file. A Hub model whose file cannot be fetched (offline, not cached) is logged and treated as having none."""
    folder = Path(name_or_path)
    if folder.is_dir():
        path = folder / filename
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(name_or_path, filename))
    except LocalEntryNotFoundError:
        logger.warning("%s of %s is neither cached nor downloadable (offline?): read as absent", filename, name_or_path)
        return None
    except EntryNotFoundError:  # the model has no such file
        return None


def write_pooling_files(folder: str | Path, pooling: Pooling, dimension: int) -> None:
    """Save `pooling` as sentence-transformers files in a model folder (``modules.json``, ``1_Pooling/config.json``), so
    the folder is read back (here and by sentence-transformers) with the same pooling."""
    folder = Path(folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": POOLING_DIR, "type": "sentence_transformers.models.Pooling"},
    ]
    if pooling.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (folder / "2_Normalize").mkdir(parents=True, exist_ok=True)
    (folder / MODULES_FILE).write_text(json.dumps(modules, indent=2) + "\n")
    (folder / POOLING_DIR).mkdir(parents=True, exist_ok=True)
    config = {"word_embedding_dimension": dimension, **{key: mode == pooling.mode for key, mode in LEGACY_MODE_KEYS.items()}}
    (folder / POOLING_DIR / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """L2-normalised sentence embeddings of token embeddings `hidden` (batch, tokens, dim) by `mode`."""
    if mode == "mean":
        return mean_pool(hidden, attention_mask)
    if mode == "cls":
        first = attention_mask.argmax(dim=1)  # the first real token: 0 with right padding, also right with left padding
        return torch.nn.functional.normalize(hidden[torch.arange(hidden.shape[0]), first], dim=-1)
    if mode == "max":
        masked = hidden.masked_fill(attention_mask.unsqueeze(-1) == 0, torch.finfo(hidden.dtype).min)
        return torch.nn.functional.normalize(masked.max(dim=1).values, dim=-1)
    raise ValueError(f"unknown pooling mode {mode!r}: expected one of {', '.join(POOLING_MODES)}")


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """L2-normalised attention-masked mean of the token embeddings (sentence-transformers' pooling)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)
