"""hf_crossenc.compat: when the transformers internals the speed and memory helpers use are missing or changed, each
helper falls back to plain transformers (the same logits and gradients) with exactly one warning; with the installed
transformers, nothing is missing and nothing is warned."""

from __future__ import annotations

import ast
import logging
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_crossenc import compat
from hf_crossenc.cpu_attention import use_cpu_attention
from hf_crossenc.first_token import first_token_only
from hf_crossenc.modeling import recomputable_layers, recompute_layers

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "hf_crossenc"
PRIVATE = (
    "transformers.modeling_utils",
    "transformers.models.bert.modeling_bert",
    "transformers.integrations.sdpa_attention",
    "transformers.masking_utils",
    "transformers.modeling_layers",
)


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch, caplog):
    monkeypatch.setattr(compat, "_warned", set())
    caplog.set_level(logging.WARNING, logger="hf_crossenc.compat")


def fallback_warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "hf_crossenc.compat"]


def model_and_batch(tiny_model_dir, attn: str = "sdpa"):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1, attn_implementation=attn).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    batch = tokenizer(["A man plays a guitar.", "Short."], ["Someone plays music on a stage.", "A much longer one."], padding=True)
    return model, batch.convert_to_tensors("pt")


def test_the_installed_transformers_has_everything(caplog):
    assert compat.first_token_attention() is not None
    assert compat.cpu_attention_support() is not None
    assert compat.gradient_checkpointing_layer() is not None
    assert fallback_warnings(caplog) == []


def test_the_package_imports_no_private_transformers_module_at_load_time():
    """Only hf_crossenc.compat reaches them, inside its functions: hf_crossenc imports whatever transformers moved."""
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            assert not any(name.startswith(PRIVATE) for name in names), f"{path.name}: module-level import of {names[0]}"


@pytest.mark.parametrize("breakage", ["no ALL_ATTENTION_FUNCTIONS", "no modeling_bert module", "eager not callable"])
def test_first_token_only_falls_back_to_the_full_forward(tiny_model_dir, monkeypatch, caplog, breakage):
    model, batch = model_and_batch(tiny_model_dir)
    with torch.no_grad():
        plain = model(**batch).logits
    import transformers.modeling_utils
    import transformers.models.bert.modeling_bert as modeling_bert

    if breakage == "no ALL_ATTENTION_FUNCTIONS":
        monkeypatch.delattr(transformers.modeling_utils, "ALL_ATTENTION_FUNCTIONS")
    elif breakage == "no modeling_bert module":
        monkeypatch.setitem(sys.modules, "transformers.models.bert.modeling_bert", None)
    else:
        monkeypatch.setattr(modeling_bert, "eager_attention_forward", "not a function")
    for _ in range(2):
        with torch.no_grad(), first_token_only(model) as applied:
            assert applied is False
            assert torch.equal(model(**batch).logits, plain)
    (warning,) = fallback_warnings(caplog)
    assert warning.startswith("first_token_only: transformers ") and "every position" in warning


@pytest.mark.parametrize("breakage", ["no sdpa_attention module", "no AttentionMaskInterface", "sdpa_mask not callable"])
def test_use_cpu_attention_leaves_the_attention_alone(tiny_model_dir, monkeypatch, caplog, breakage):
    model, batch = model_and_batch(tiny_model_dir)
    reference, _ = model_and_batch(tiny_model_dir)
    import transformers.masking_utils as masking_utils

    if breakage == "no sdpa_attention module":
        monkeypatch.setitem(sys.modules, "transformers.integrations.sdpa_attention", None)
    elif breakage == "no AttentionMaskInterface":
        monkeypatch.delattr(masking_utils, "AttentionMaskInterface")
    else:
        monkeypatch.setattr(masking_utils, "sdpa_mask", None)
    assert use_cpu_attention(model) is False and use_cpu_attention(model) is False
    assert model.config._attn_implementation == "sdpa"
    model.train()  # dropout on: the same masks from the same seed as plain transformers
    reference.train()
    torch.manual_seed(3)
    ours = model(**batch).logits
    torch.manual_seed(3)
    assert torch.equal(ours, reference(**batch).logits)
    (warning,) = fallback_warnings(caplog)
    assert warning.startswith("use_cpu_attention: transformers ") and "keeps its own attention" in warning


def test_recompute_is_off_without_gradient_checkpointing_layer(tiny_model_dir, monkeypatch, caplog):
    import transformers.modeling_layers

    from hf_crossenc import CrossEncoderTrainer, CrossEncoderTrainingArguments

    model, batch = model_and_batch(tiny_model_dir)
    model.train()
    grads = []
    for broken in (False, True):
        if broken:
            monkeypatch.delattr(transformers.modeling_layers, "GradientCheckpointingLayer")
        model.zero_grad(set_to_none=True)
        torch.manual_seed(5)
        with recompute_layers(model, batch["input_ids"].numel(), 1) as recomputed:
            model(**batch).logits.sum().backward()
        assert recomputed == (0 if broken else 1)
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    assert all(torch.equal(grads[1][name], grad) for name, grad in grads[0].items())  # recompute never changes gradients
    assert recomputable_layers(model) == []
    args = CrossEncoderTrainingArguments(output_dir="out", recompute_above_tokens=64, eval_strategy="no", use_cpu=True)
    CrossEncoderTrainer(model=model, args=args)
    (warning,) = fallback_warnings(caplog)
    assert warning.startswith("recompute_above_tokens: transformers ") and "no recompute" in warning
    assert not [r for r in caplog.records if "GradientCheckpointingLayer below its last layer" in r.getMessage()]
