"""scripts/bench_profile.py: the CPU description, the real-shape ceiling and the split of a profile (no timing asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench_profile():
    spec = importlib.util.spec_from_file_location("bench_profile", REPO / "scripts" / "bench_profile.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_profile", module)
    spec.loader.exec_module(module)
    return module


def test_linear_shapes_count_the_encoder_layers_not_the_head(bench_profile, tiny_model_dir):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    shapes = bench_profile.linear_shapes(model)
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    # per layer: query, key, value, attention output (h x h), intermediate (h x i), output (i x h)
    assert shapes == {(hidden, hidden): 4 * layers, (hidden, inner): layers, (inner, hidden): layers}


def test_linear_ceiling_sums_each_batch_at_the_rate_of_its_nearest_measured_size(bench_profile, monkeypatch):
    # rates by token count: 100 GFLOP/s at 256 tokens, 200 at 512, ... (independent of the shape here)
    monkeypatch.setattr(bench_profile, "linear_rate", lambda shape, tokens: {256: 100.0, 512: 200.0}.get(tokens, 400.0))
    shapes = {(4, 8): 2}
    got = bench_profile.linear_ceiling(shapes, [250, 500], passes=3)
    flops = [2 * 250 * 4 * 8 * 2 * 3, 2 * 500 * 4 * 8 * 2 * 3]
    assert got["gflops"] == pytest.approx(sum(flops) / 1e9)
    assert got["seconds"] == pytest.approx(flops[0] / 100e9 + flops[1] / 200e9)
    assert got["gflop_per_s"] == pytest.approx(sum(flops) / 1e9 / got["seconds"])
    assert got["rates_gflop_per_s"]["4x8"]["1024"] == 400.0


def test_split_profile_puts_matrix_products_other_ops_and_the_rest_apart(bench_profile):
    events = [SimpleNamespace(key="aten::addmm", self_cpu_time_total=3e6), SimpleNamespace(key="aten::mm", self_cpu_time_total=1e6),
              SimpleNamespace(key="aten::gelu", self_cpu_time_total=2e6), SimpleNamespace(key="aten::copy_", self_cpu_time_total=1e6)]  # fmt: skip
    prof = SimpleNamespace(key_averages=lambda: events)
    got = bench_profile.split_profile(prof, wall_s=10.0)
    assert (got["matmul_share"], got["other_ops_share"], got["outside_ops_share"]) == pytest.approx((0.4, 0.3, 0.3))
    assert got["top_ops"][0] == ("aten::addmm", 0.3)


def test_cpu_description_names_the_model_and_its_bf16_features(bench_profile):
    cpu = bench_profile.cpu_description()
    assert cpu["model"] and isinstance(cpu["amx"], bool) and isinstance(cpu["avx512_bf16"], bool) and cpu["threads"] >= 1
    text = bench_profile.describe({**cpu, "amx": True})
    assert cpu["model"] in text and "AMX" in text
    assert "no native bf16" in bench_profile.describe({**cpu, "amx": False, "avx512_bf16": False})
