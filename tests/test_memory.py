"""Memory: the longest training batches recompute activations in the backward pass, with the same gradients;
the heap is trimmed every N steps on CPU;
the caches of compiled CPU kernels are bounded."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.models.bert.modeling_bert import BertLayer

from hf_crossenc.commands.train import main
from hf_crossenc.cpu_attention import use_cpu_attention
from hf_crossenc.fast_dropout import use_fast_dropout
from hf_crossenc.first_token import first_token_only
from hf_crossenc.memory import KERNEL_CACHE_VARIABLES, bound_kernel_caches, trim_heap
from hf_crossenc.modeling import freeze, layers_to_recompute, recompute_layers
from hf_crossenc.training_args import bf16_is_fast

PAIRS = [
    ("A man is playing a guitar.", "A man plays the guitar loudly on a stage."),
    ("Short.", "A much longer second sentence with many more tokens in it than the first."),
    ("Two dogs run.", "Dogs."),
]


@pytest.mark.parametrize(
    ("tokens", "limit", "layers", "expected"),
    [
        (2048, 2048, 5, 0),  # up to the limit: nothing
        (4096, 0, 5, 0),  # limit 0: off
        (4096, 2048, 5, 3),  # keeps floor(5 * 2048 / 4096) = 2 layers' activations
        (3072, 2048, 5, 2),  # keeps floor(10240 / 3072) = 3
        (2049, 2048, 5, 1),  # keeps floor(10240 / 2049) = 4
        (10**6, 2048, 5, 5),  # keeps none
        (4096, 2048, 0, 0),  # nothing to recompute
    ],
)
def test_layers_to_recompute(tokens, limit, layers, expected):
    assert layers_to_recompute(tokens, limit, layers) == expected


def _model_and_batch(tiny_model_dir, layers: int = 3):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1, num_hidden_layers=layers)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    batch = tokenizer([a for a, _ in PAIRS], [b for _, b in PAIRS], padding=True, return_tensors="pt")
    return model.train(), batch


def _step(model, batch, limit: int) -> tuple[int, list[int], dict[str, torch.Tensor]]:
    """One training forward/backward as CrossEncoderTrainer runs it (bf16 autocast, first-token last layer),
    with dropout on; returns (layers recomputed, forward calls per layer, gradients)."""
    model.zero_grad(set_to_none=True)
    calls = [0] * len(model.bert.encoder.layer)
    hooks = [
        layer.intermediate.register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
        for i, layer in enumerate(model.bert.encoder.layer)
    ]
    torch.manual_seed(1)  # the same dropout masks in every call
    with (
        torch.autocast("cpu", dtype=torch.bfloat16),
        first_token_only(model),
        recompute_layers(model, batch["input_ids"].numel(), limit) as recomputed,
    ):
        logits = model(**batch).logits
    torch.nn.functional.binary_cross_entropy_with_logits(logits.float().squeeze(-1), torch.tensor([0.9, 0.1, 0.5])).backward()
    for hook in hooks:
        hook.remove()
    return recomputed, calls, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_same_gradients_bit_for_bit_with_dropout(tiny_model_dir):
    model, batch = _model_and_batch(tiny_model_dir)
    use_fast_dropout(model)  # dropout masks drawn from the global generator: the recomputation must replay them
    use_cpu_attention(model)
    tokens = batch["input_ids"].numel()
    none, calls_none, grads_none = _step(model, batch, limit=0)
    one, calls_one, grads_one = _step(model, batch, limit=tokens - 1)  # keeps floor(2 * (T-1) / T) = 1 of 2 layers
    both, calls_both, grads_both = _step(model, batch, limit=1)
    assert (none, one, both) == (0, 1, 2)
    assert calls_none == [1, 1, 1] and calls_one == [2, 1, 1] and calls_both == [2, 2, 1], "the bottom layers run again"
    assert grads_none.keys() == grads_one.keys() == grads_both.keys() and len(grads_none) > 10
    for name, grad in grads_none.items():
        assert torch.equal(grads_one[name], grad) and torch.equal(grads_both[name], grad), name
    # Dropout was really on (another seed gives other gradients), so the equality above covers the masks.
    torch.manual_seed(2)
    model.zero_grad(set_to_none=True)
    model(**batch).logits.sum().backward()
    assert not all(torch.equal(p.grad, grads_none[n]) for n, p in model.named_parameters() if p.grad is not None)


def _clean(model) -> bool:
    return all(
        type(layer) is BertLayer and not layer.gradient_checkpointing
        and not {"gradient_checkpointing", "_gradient_checkpointing_func"} & set(vars(layer))
        for layer in model.bert.encoder.layer
    )  # fmt: skip


def test_restores_the_layers_and_skips_fixed_ones(tiny_model_dir):
    model, batch = _model_and_batch(tiny_model_dir)
    assert _clean(model)
    assert _step(model, batch, limit=1)[0] == 2 and _clean(model)
    with pytest.raises(RuntimeError, match="boom"), recompute_layers(model, 10**6, 1) as recomputed:
        assert recomputed == 2 and model.bert.encoder.layer[0].gradient_checkpointing
        raise RuntimeError("boom")
    assert _clean(model), "restored when the forward fails too"
    freeze(model, layers=1)  # layer 0 keeps nothing for the backward pass anyway
    recomputed, calls, _ = _step(model, batch, limit=1)
    assert recomputed == 1 and calls == [1, 2, 1] and _clean(model)
    # A model checkpointing on its own (--gradient_checkpointing) is left to it, and restored as it was.
    model, batch = _model_and_batch(tiny_model_dir)
    model.activation_checkpointing_enable()
    before = [dict(vars(layer)) for layer in model.bert.encoder.layer]
    with recompute_layers(model, 10**6, 1) as recomputed:
        assert recomputed == 0
    assert [dict(vars(layer)) for layer in model.bert.encoder.layer] == before
    # ... and switched off again, its instance attributes (off) come back as they were after a recompute.
    model.activation_checkpointing_disable()
    before = [dict(vars(layer)) for layer in model.bert.encoder.layer]
    assert _step(model, batch, limit=1)[0] == 2
    assert [dict(vars(layer)) for layer in model.bert.encoder.layer] == before


def test_models_without_recomputable_layers_train_as_usual():
    """ALBERT shares one layer across its depth (no list of per-layer modules): nothing is recomputed, no error."""
    from transformers import AlbertConfig, AlbertForSequenceClassification

    from hf_crossenc.modeling import recomputable_layers

    config = AlbertConfig(vocab_size=50, embedding_size=8, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                          intermediate_size=32, num_labels=1)  # fmt: skip
    model = AlbertForSequenceClassification(config).train()
    assert recomputable_layers(model) == []
    ids = torch.randint(5, 50, (4, 12))
    with recompute_layers(model, ids.numel(), 1) as recomputed:
        model(input_ids=ids).logits.sum().backward()
    assert recomputed == 0


def test_training_run_gives_the_same_weights_and_records_it(tmp_path, stsb_slices, tiny_model_dir):
    """Through main(): every batch recomputing (limit 1 token) trains to the same weights as none, bit for bit."""
    from safetensors.torch import load_file

    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(stsb_slices["train"]), "--label_scale", "0,5"]
    argv += ["--num_train_epochs", "1", "--max_train_samples", "16", "--per_device_train_batch_size", "4"]
    argv += ["--max_length", "32", "--learning_rate", "1e-3", "--eval_strategy", "no", "--load_best_model_at_end", "false"]
    bad = tmp_path / "bad"
    assert main([*argv, "--recompute_above_tokens", "-1", "--output_dir", str(bad)]) == 2 and not bad.exists()
    runs = {}
    for limit in (0, 1):
        out = tmp_path / f"limit-{limit}"
        trim = ["--torch_empty_cache_steps", "2"] if limit else []  # and the heap trimmed every 2 steps
        assert main([*argv, "--recompute_above_tokens", str(limit), *trim, "--output_dir", str(out)]) == 0
        runs[limit] = (load_file(str(out / "model.safetensors")), json.loads((out / "results.json").read_text())["run"])
    (off, run_off), (on, run_on) = runs[0], runs[1]
    assert (run_off["recompute_above_tokens"], run_off["recomputed_batches"]) == (0, 0)
    assert (run_on["recompute_above_tokens"], run_on["recomputed_batches"]) == (1, run_on["global_steps"]) and run_on["global_steps"] == 4
    assert off.keys() == on.keys()
    assert all(torch.equal(off[name], on[name]) for name in off)
    assert run_off["heap_trims"] is None and run_on["heap_trims"] == (2 if trim_heap() else 0)


def _rss_mb() -> float:
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmRSS")).split()[1]) / 1024


@pytest.mark.skipif(not trim_heap(), reason="needs glibc's malloc_trim")
def test_trim_heap_returns_freed_pages_to_the_os():
    """Freed small blocks below a live one stay resident (glibc only gives back the top of its heap by itself)
    until the heap is trimmed."""
    import numpy as np

    trim_heap()
    blocks = [np.ones(8192) for _ in range(4096)]  # 4096 x 64 KB from the heap (below the mmap threshold)
    keep = np.ones(8192)  # allocated last: pins the top of the heap
    del blocks
    before = _rss_mb()
    assert trim_heap()
    assert before - _rss_mb() > 150, "the 256 MB freed below `keep` went back to the OS"
    assert keep.sum() == 8192


KERNEL_PROBE = """
import sys
import torch
from hf_crossenc.memory import bound_kernel_caches, trim_heap

bound_kernel_caches(int(sys.argv[1]))  # after importing torch, before its first bf16 kernel, as run() does
torch.set_num_threads(1)
layer = torch.nn.Linear(384, 1536).to(torch.bfloat16)


def rss_mb():
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmRSS")).split()[1]) / 1024


with torch.inference_mode():
    layer(torch.ones(8, 384, dtype=torch.bfloat16))
    trim_heap()
    before = rss_mb()
    for rows in range(9, 409):  # 400 input shapes: one kernel each
        layer(torch.ones(rows, 384, dtype=torch.bfloat16))
    trim_heap()
print(rss_mb() - before)
"""


def _kernel_cache_growth(tmp_path, capacity: int) -> float:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in KERNEL_CACHE_VARIABLES}
    done = subprocess.run([sys.executable, "-c", KERNEL_PROBE, str(capacity)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return float(done.stdout.split()[-1])


@pytest.mark.skipif(not (torch.backends.mkldnn.is_available() and bf16_is_fast()), reason="needs oneDNN's native bf16 kernels")
@pytest.mark.skipif(not trim_heap(), reason="needs glibc's malloc_trim")
def test_bounded_kernel_caches_stop_memory_growing_with_input_shapes(tmp_path):
    """Every new input shape of a bf16 matrix product compiles and caches a kernel; PyTorch's default caches keep
    1024 of them in the resident set. Bounded, the resident set stays flat."""
    unbounded = _kernel_cache_growth(tmp_path, 0)
    bounded = _kernel_cache_growth(tmp_path, 16)
    assert unbounded > 40, f"400 cached kernels should hold tens of MB, grew {unbounded:.0f} MB"
    assert bounded < unbounded / 4, f"bounded to 16 kernels the process still grew {bounded:.0f} MB (unbounded {unbounded:.0f})"


def test_bound_kernel_caches_sets_both_variables_unless_already_set(monkeypatch):
    import os

    environ = {k: v for k, v in os.environ.items() if k not in KERNEL_CACHE_VARIABLES}
    monkeypatch.setattr(os, "environ", environ)  # this process's real environment stays untouched
    assert bound_kernel_caches(0) == {}
    assert bound_kernel_caches(256) == {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "256", "LRU_CACHE_CAPACITY": "256"}
    del environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"]
    environ["LRU_CACHE_CAPACITY"] = "64"  # the user's own setting wins
    assert bound_kernel_caches(128) == {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "128", "LRU_CACHE_CAPACITY": "64"}
    with pytest.raises(ValueError, match="--cpu_kernel_cache"):
        bound_kernel_caches(-1)


def test_scoring_commands_bound_the_kernel_caches(monkeypatch, tiny_model_dir, capsys):
    """`hf-crossenc predict/evaluate/rank` bound both kernel caches before loading the model, as training does:
    256 by default, the flag's value, or what the environment already says; 0 leaves them unset."""
    import os

    from hf_crossenc import cli

    def predict(*flags: str, environ: dict[str, str]) -> int:
        monkeypatch.setattr(os, "environ", environ)  # this process's real environment stays untouched
        return cli.main(["predict", str(tiny_model_dir), "--pair", *PAIRS[0], "--precision", "bf16", *flags])

    clean = {k: v for k, v in os.environ.items() if k not in KERNEL_CACHE_VARIABLES}
    environ = dict(clean)
    assert predict(environ=environ) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["text_a"] == PAIRS[0][0]
    assert {k: environ.get(k) for k in KERNEL_CACHE_VARIABLES} == dict.fromkeys(KERNEL_CACHE_VARIABLES, "256")
    environ = {**clean, "LRU_CACHE_CAPACITY": "64"}
    assert predict("--cpu_kernel_cache", "32", environ=environ) == 0
    assert (environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"], environ["LRU_CACHE_CAPACITY"]) == ("32", "64")
    environ = dict(clean)
    assert predict("--cpu_kernel_cache", "0", environ=environ) == 0
    assert not set(KERNEL_CACHE_VARIABLES) & set(environ)
    environ = dict(clean)
    with pytest.raises(SystemExit) as done:  # argparse refuses it before anything is set or loaded
        predict("--cpu_kernel_cache", "-1", environ=environ)
    assert done.value.code == 2
    assert "argument --cpu_kernel_cache" in capsys.readouterr().err and not set(KERNEL_CACHE_VARIABLES) & set(environ)
    for command in (["evaluate", "m", "data.csv"], ["rank", "m", "--query", "q", "--passage", "p"]):
        assert cli.build_parser().parse_args([*command, "--cpu_kernel_cache", "8"]).cpu_kernel_cache == 8
