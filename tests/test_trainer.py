"""hf_crossenc.trainer: CrossEncoderTrainer clips gradients on CPU with clip_grad_norm_cpu, equal to torch's."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("scale", [1e-3, 10.0])  # below max_grad_norm (nothing clipped) and above it
def test_cpu_clipping_equals_torch(scale: float, tiny_model_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForSequenceClassification

    import hf_crossenc.trainer as trainer_module
    from hf_crossenc import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from hf_crossenc.trainer import clip_grad_norm_cpu

    def with_grads(seed: int) -> torch.nn.Module:
        model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
        gen = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=gen) * scale
        return model

    reference = with_grads(0)
    expected_norm = torch.nn.utils.clip_grad_norm_(list(reference.parameters()), 1.0)
    assert (float(expected_norm) > 1.0) == (scale > 1)
    ours = with_grads(0)
    assert torch.equal(clip_grad_norm_cpu(list(ours.parameters()), 1.0), expected_norm)
    for p, q in zip(reference.parameters(), ours.parameters()):
        assert torch.equal(p.grad, q.grad)
    # The Trainer takes this path on CPU.
    calls = []
    monkeypatch.setattr(trainer_module, "clip_grad_norm_cpu", lambda *a: calls.append(a) or clip_grad_norm_cpu(*a))
    model = with_grads(0)
    args = CrossEncoderTrainingArguments(output_dir="out", max_grad_norm=1.0, eval_strategy="no", report_to="none", use_cpu=True)
    trainer = CrossEncoderTrainer(model=model, args=args)
    assert torch.equal(trainer._clip_grad_norm(model), expected_norm) and len(calls) == 1
    for p, q in zip(reference.parameters(), model.parameters()):
        assert torch.equal(p.grad, q.grad)


def test_training_args_json_names_local_paths_by_their_last_part(tmp_path):
    from hf_crossenc.trainer import public_arguments
    from hf_crossenc.training_args import CrossEncoderTrainingArguments

    members = f"{tmp_path / 'soup' / 'seed-7'},{tmp_path / 'soup' / 'seed-9'}"
    values = public_arguments(CrossEncoderTrainingArguments(output_dir=str(tmp_path / "out"), average_with=members, hub_token="hf_secret"))
    assert (values["output_dir"], values["average_with"]) == ("out", "seed-7,seed-9")
    assert str(tmp_path) not in str(values) and "hf_secret" not in str(values)
