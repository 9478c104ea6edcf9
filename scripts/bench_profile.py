"""Where the time of a pass goes, for scripts/bench.py: the CPU, the real-shape ceiling, an op profile.

* `cpu_description` — the CPU model and its bf16 features (AVX512-BF16, AMX), so every number names its machine.
* `linear_ceiling` — the GFLOP/s of the model's own linear layers (``torch.nn.functional.linear`` in bf16 at the
  shapes of its layers and at the token counts of the measured batches), and from it the speed a pass bound by its
  matrix products alone would reach: the real limit of this machine for this model, not a square-matmul peak.
* `profile_inference` / `profile_training` — a `torch.profiler` run over hf_crossenc's own scoring and training
  passes, split into time in matrix products, time in every other op, and time outside ops (Python, the
  Trainer's bookkeeping, data collation).
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

MATRIX_PRODUCTS = frozenset(
    {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm", "aten::_addmm_activation", "aten::linear_backward"}
)
"""Ops whose own (self) time is a matrix product; everything else an op does counts as 'other ops'."""


def cpu_description() -> dict:
    """The CPU model name and whether it has AVX512-BF16 and AMX (read from /proc/cpuinfo; torch's view too)."""
    import torch

    name, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name in ("", platform.machine(), platform.processor()):
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    capability = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else "unknown"
    return {
        "model": name,
        "amx": "amx_tile" in flags and "amx_bf16" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "torch_capability": capability,
        "threads": torch.get_num_threads(),
    }


def describe(cpu: dict) -> str:
    bf16 = "AMX" if cpu["amx"] else "AVX512-BF16, no AMX" if cpu["avx512_bf16"] else "no native bf16"
    return f"{cpu['model']} ({bf16}; torch {cpu['torch_capability']}, {cpu['threads']} threads)"


def linear_shapes(model) -> dict[tuple[int, int], int]:
    """(in_features, out_features) -> how many of the encoder's linear layers have that shape (head excluded)."""
    import torch

    shapes: dict[tuple[int, int], int] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and ".layer." in f".{name}.":
            key = (module.in_features, module.out_features)
            shapes[key] = shapes.get(key, 0) + 1
    return shapes


def linear_rate(shape: tuple[int, int], tokens: int, repeats: int = 20) -> float:
    """Measured GFLOP/s of ``F.linear`` in bf16 on a (tokens x in) input and an (out x in) weight, with bias."""
    import torch

    n_in, n_out = shape
    x = torch.randn(tokens, n_in, dtype=torch.bfloat16)
    w, b = torch.randn(n_out, n_in, dtype=torch.bfloat16), torch.randn(n_out, dtype=torch.bfloat16)
    for _ in range(3):
        torch.nn.functional.linear(x, w, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.nn.functional.linear(x, w, b)
    return 2 * tokens * n_in * n_out * repeats / (time.perf_counter() - start) / 1e9


def linear_ceiling(shapes: dict[tuple[int, int], int], batch_tokens: list[int], passes: int = 1) -> dict:
    """Seconds the matrix products of the model's linear layers take at the measured bf16 rates, summed over
    batches of ``batch_tokens`` tokens each (``passes``: 1 for a forward, 3 for forward + backward, whose two
    products per layer have the forward's FLOPs). The rate for a batch is measured at the nearest of a few token
    counts (256 ... 4096), so the ceiling follows the real shapes rather than one square matmul."""
    grid = [256, 512, 1024, 2048, 4096]
    rates = {(shape, t): linear_rate(shape, t) for shape in shapes for t in grid}
    seconds = flops = 0.0
    for tokens in batch_tokens:
        nearest = min(grid, key=lambda t: abs(t - tokens))
        for shape, count in shapes.items():
            f = 2 * tokens * shape[0] * shape[1] * count * passes
            flops += f
            seconds += f / (rates[(shape, nearest)] * 1e9)
    by_shape = {f"{s[0]}x{s[1]}": {str(t): round(rates[(s, t)], 1) for t in grid} for s in shapes}
    return {"seconds": seconds, "gflops": flops / 1e9, "gflop_per_s": flops / 1e9 / seconds if seconds else 0.0,
            "rates_gflop_per_s": by_shape}  # fmt: skip


def split_profile(prof, wall_s: float) -> dict:
    """Wall time of the profiled passes split into matrix products, other ops, and time outside any op."""
    matmul = other = 0.0
    for event in prof.key_averages():
        self_s = event.self_cpu_time_total / 1e6
        if event.key in MATRIX_PRODUCTS:
            matmul += self_s
        else:
            other += self_s
    outside = max(0.0, wall_s - matmul - other)
    top = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
    return {
        "wall_s": wall_s,
        "matmul_share": matmul / wall_s,
        "other_ops_share": other / wall_s,
        "outside_ops_share": outside / wall_s,
        "top_ops": [(e.key, round(e.self_cpu_time_total / 1e6 / wall_s, 3)) for e in top],
    }


def profile_inference(predictor, pairs: list[tuple[str, str]], batch_size: int) -> dict:
    """One profiled scoring pass of ``predictor`` over ``pairs`` (after one unprofiled warm-up pass)."""
    import torch

    predictor.predict(pairs, batch_size=batch_size)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        predictor.predict(pairs, batch_size=batch_size)
        wall = time.perf_counter() - start
    return split_profile(prof, wall)


def profile_training(model_path: Path, pairs: list[tuple[str, str]], labels: list[float], batch_size: int,
                     learning_rate: float, work: Path, steps: int = 24, skip: int = 6) -> dict:  # fmt: skip
    """Profiled steps ``skip+1 .. steps`` of hf_crossenc's own `CrossEncoderTrainer` (its defaults: bf16 where native,
    length-grouped batches, fast dropout, CPU attention) on the first pairs of the training set."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback

    from hf_crossenc import CrossEncoderDataCollator, CrossEncoderTrainer, CrossEncoderTrainingArguments

    class Profiled(TrainerCallback):
        def __init__(self) -> None:
            self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self.start = 0.0
            self.wall = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == skip:
                self.prof.start()
                self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == steps:
                self.wall = time.perf_counter() - self.start
                self.prof.stop()

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=1)
    n = batch_size * steps
    ds = Dataset.from_dict({"text_a": [a for a, _ in pairs[:n]], "text_b": [b for _, b in pairs[:n]], "label": labels[:n]})
    args = CrossEncoderTrainingArguments(
        output_dir=str(work / "profile"), task="regression", max_steps=steps, per_device_train_batch_size=batch_size,
        learning_rate=learning_rate, eval_strategy="no", save_strategy="no", report_to="none", disable_tqdm=True,
        use_cpu=True,
    )  # fmt: skip
    callback = Profiled()
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer,
                                  data_collator=CrossEncoderDataCollator(tokenizer, max_length=128), callbacks=[callback])  # fmt: skip
    trainer.train()
    result = split_profile(callback.prof, callback.wall)
    result["steps"] = steps - skip
    return result
