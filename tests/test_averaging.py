"""--average_checkpoints: the saved model is the mean of the epoch-end weights, and --resume continues the mean."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hf_crossenc.averaging import AVERAGE_FILE
from hf_crossenc.commands.train import main

EPOCHS = 3


def flags(tiny: Path, data: dict[str, Path], out: Path) -> list[str]:
    return [
        "--model_name_or_path", str(tiny),
        "--train_file", str(data["train"]), "--validation_file", str(data["validation"]), "--test_file", str(data["test"]),
        "--label_scale", "0,5", "--output_dir", str(out), "--num_train_epochs", str(EPOCHS),
        "--per_device_train_batch_size", "16", "--learning_rate", "2e-3", "--max_length", "64", "--seed", "5",
        "--save_total_limit", "10", "--disable_tqdm", "true", "--average_checkpoints", "true",
    ]  # fmt: skip


def checkpoints(out: Path) -> list[Path]:
    return sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))


def crashed_copy(run: Path, to: Path, drop: list[str] = ()) -> Path:
    """`run` as a crash would leave it: its checkpoint folders (minus `drop`), none of the final files."""
    shutil.copytree(run, to, ignore=shutil.ignore_patterns(*drop))
    for leftover in to.iterdir():
        if leftover.is_file():
            leftover.unlink()
    return to


@pytest.fixture
def averaged_run(tmp_path, tiny_model_dir, stsb_slices) -> Path:
    out = tmp_path / "run"
    assert main(flags(tiny_model_dir, stsb_slices, out)) == 0
    return out


def test_saved_model_is_the_mean_of_the_epoch_end_weights(averaged_run: Path) -> None:
    epochs = checkpoints(averaged_run)
    assert len(epochs) == EPOCHS
    snapshots = [load_file(folder / "model.safetensors") for folder in epochs]
    saved = load_file(averaged_run / "model.safetensors")
    for name, value in saved.items():
        if not value.is_floating_point():
            continue
        torch.testing.assert_close(value, sum(s[name] for s in snapshots) / EPOCHS, rtol=0, atol=1e-6)
    # Training moved the weights between epochs, so the mean is none of the checkpoints.
    assert any(not torch.allclose(saved[n], snapshots[-1][n]) for n in saved if saved[n].is_floating_point())

    results = json.loads((averaged_run / "results.json").read_text())
    steps = [int(folder.name.split("-")[1]) for folder in epochs]
    assert results["run"]["averaged_steps"] == steps
    assert results["run"]["best_model_checkpoint"] is None
    card = (averaged_run / "README.md").read_text()
    assert f"uniform average of the weights at the end of each epoch (steps {', '.join(map(str, steps))})" in card
    assert "the best by validation" not in card


def test_resume_continues_the_average(averaged_run: Path, tmp_path, tiny_model_dir, stsb_slices, capsys) -> None:
    """Cut the finished run back to its second checkpoint and resume: the same averaged weights come out."""
    resumed = tmp_path / "resumed"
    crashed_copy(averaged_run, resumed, [checkpoints(averaged_run)[-1].name])
    assert main([*flags(tiny_model_dir, stsb_slices, resumed), "--resume", "true"]) == 0
    expected, got = load_file(averaged_run / "model.safetensors"), load_file(resumed / "model.safetensors")
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6)
    assert json.loads((resumed / "results.json").read_text())["run"]["averaged_steps"] == [
        int(folder.name.split("-")[1]) for folder in checkpoints(averaged_run)
    ]

    # A checkpoint without the running sum counts as incomplete (cut off before it was written): resume skips it.
    fallback = tmp_path / "fallback"
    crashed_copy(resumed, fallback)
    (checkpoints(fallback)[-1] / AVERAGE_FILE).unlink()
    assert main([*flags(tiny_model_dir, stsb_slices, fallback), "--resume", "true"]) == 0
    got = load_file(fallback / "model.safetensors")
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6)

    # With none left (written without --average_checkpoints): a clear error, nothing written.
    broken = tmp_path / "broken"
    crashed_copy(resumed, broken, [checkpoints(resumed)[-1].name])
    for folder in checkpoints(broken):
        (folder / AVERAGE_FILE).unlink()
    capsys.readouterr()
    assert main([*flags(tiny_model_dir, stsb_slices, broken), "--resume", "true"]) == 2
    assert f"a checkpoint also needs its {AVERAGE_FILE}" in capsys.readouterr().err
    assert not (broken / "model.safetensors").exists()


def test_resume_from_the_last_checkpoint_still_averages(averaged_run: Path, tmp_path, tiny_model_dir, stsb_slices) -> None:
    """The run died after its last checkpoint (while evaluating or pushing): resuming runs no step, and still averages."""
    resumed = tmp_path / "resumed"
    crashed_copy(averaged_run, resumed)
    assert main([*flags(tiny_model_dir, stsb_slices, resumed), "--resume", "true"]) == 0
    expected, got = load_file(averaged_run / "model.safetensors"), load_file(resumed / "model.safetensors")
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6)
    steps = [int(folder.name.split("-")[1]) for folder in checkpoints(averaged_run)]
    assert json.loads((resumed / "results.json").read_text())["run"]["averaged_steps"] == steps


def test_step_checkpoints_resume_with_every_epoch(tmp_path, tiny_model_dir, stsb_slices) -> None:
    """--save_strategy steps, twice an epoch: resuming from a checkpoint before the first epoch ends (empty sum) gives
    the uninterrupted run's average; resuming from one at an epoch's last step (saved before the epoch ends) counts
    that epoch."""
    per_epoch = 96 // 16
    step_flags = ["--save_strategy", "steps", "--save_steps", str(per_epoch // 2)]
    full = tmp_path / "full"
    assert main([*flags(tiny_model_dir, stsb_slices, full), *step_flags]) == 0
    steps = json.loads((full / "results.json").read_text())["run"]["averaged_steps"]
    assert steps == [per_epoch * (k + 1) for k in range(EPOCHS)]

    def resume_from(cut: int) -> Path:
        resumed = tmp_path / f"cut-{cut}"
        later = [f"checkpoint-{step}" for step in range(cut + 1, EPOCHS * per_epoch + 1)]
        crashed_copy(full, resumed, later)
        assert main([*flags(tiny_model_dir, stsb_slices, resumed), *step_flags, "--resume", "true"]) == 0
        assert json.loads((resumed / "results.json").read_text())["run"]["averaged_steps"] == steps
        return resumed

    expected, got = load_file(full / "model.safetensors"), load_file(resume_from(per_epoch // 2) / "model.safetensors")
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6)
    # From the end of epoch 2, the rest of the run is not the uninterrupted one (its epoch-end evaluation drew a
    # DataLoader seed from the global RNG after the checkpoint's RNG state was saved), so check the arithmetic:
    # the final model is (epochs 1 + 2, from the checkpoint's sum) + its own epoch 3, over 3.
    resumed = resume_from(2 * per_epoch)
    carried = load_file(resumed / f"checkpoint-{2 * per_epoch}" / AVERAGE_FILE)
    last = load_file(resumed / f"checkpoint-{EPOCHS * per_epoch}" / "model.safetensors")
    got = load_file(resumed / "model.safetensors")
    for name, total in carried.items():
        torch.testing.assert_close(got[name], (total + last[name]) / EPOCHS, rtol=0, atol=1e-6)


def test_soup_seeds_average_the_runs_of_each_seed(tmp_path, tiny_model_dir, stsb_slices) -> None:
    """--soup_seeds 5,6: seed 5 trains in OUTPUT_DIR/soup/seed-5, seed 6 in OUTPUT_DIR; the saved model is their mean."""
    out = tmp_path / "soup"
    assert main([*flags(tiny_model_dir, stsb_slices, out), "--soup_seeds", "5,6"]) == 0
    member = out / "soup" / "seed-5"
    assert (member / "results.json").is_file() and not list(member.glob("checkpoint-*"))
    own_epochs = [load_file(folder / "model.safetensors") for folder in checkpoints(out)]
    assert len(own_epochs) == EPOCHS
    member_weights, saved = load_file(member / "model.safetensors"), load_file(out / "model.safetensors")
    for name, value in saved.items():
        if value.is_floating_point():
            own = sum(s[name] for s in own_epochs) / EPOCHS
            torch.testing.assert_close(value, (own + member_weights[name]) / 2, rtol=0, atol=1e-6)
    assert not torch.equal(member_weights["classifier.weight"], saved["classifier.weight"])

    results = json.loads((out / "results.json").read_text())
    member_results = json.loads((member / "results.json").read_text())
    (soup_member,) = results["run"]["averaged_with"]
    assert soup_member["model"] == "seed-5" and soup_member["seed"] == 5
    assert soup_member["validation"]["spearman"] == member_results["validation"]["spearman"]
    card = (out / "README.md").read_text()
    assert "The model is the uniform average of 2 runs of the same recipe with different seeds (a seed soup)" in card
    assert "this run (seed 6; the average of its weights at the end of each epoch" in card
    assert "the run with seed 5 (validation Spearman" in card and "seed-5" not in card


def test_average_with_a_model_of_another_architecture_is_refused(tmp_path, tiny_model_dir, stsb_slices, capsys) -> None:
    other = tmp_path / "other"
    other.mkdir()
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(other / "model.safetensors"))
    out = tmp_path / "out"
    capsys.readouterr()
    assert main([*flags(tiny_model_dir, stsb_slices, out), "--average_with", str(other)]) == 2
    err = capsys.readouterr().err
    assert f"--average_with: {other / 'model.safetensors'} has no tensor" in err and "Traceback" not in err
    assert not out.exists()


def test_soup_resume_reuses_finished_members(tmp_path, tiny_model_dir, stsb_slices, caplog) -> None:
    """A soup cut off after its first member: --resume reuses that member and ends with the same weights."""
    out = tmp_path / "soup"
    soup_flags = [*flags(tiny_model_dir, stsb_slices, out), "--soup_seeds", "5,6", "--num_train_epochs", "1"]
    assert main(soup_flags) == 0
    expected = load_file(out / "model.safetensors")
    for leftover in out.iterdir():  # keep soup/seed-5 only, as if the run died before the last member
        if leftover.name != "soup":
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    member_mtime = (out / "soup" / "seed-5" / "model.safetensors").stat().st_mtime_ns
    caplog.set_level("INFO", logger="hf_crossenc")
    assert main([*soup_flags, "--resume", "true"]) == 0
    assert "reusing the finished run" in caplog.text
    assert (out / "soup" / "seed-5" / "model.safetensors").stat().st_mtime_ns == member_mtime
    got = load_file(out / "model.safetensors")
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6)


def test_python_api_trainer_averages_the_epochs(tmp_path, tiny_model_dir) -> None:
    """CrossEncoderTrainer with CrossEncoderTrainingArguments(average_checkpoints=True), no scripts/train.py."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_crossenc import CrossEncoderDataCollator, CrossEncoderTrainer, CrossEncoderTrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    pairs = Dataset.from_dict(
        {
            "text_a": [f"a man plays {i}" for i in range(24)],
            "text_b": [f"someone plays {i}" for i in range(24)],
            "label": [i / 23 for i in range(24)],
        }
    )

    def train(output_dir: Path, resume_from_checkpoint: str | None = None) -> torch.nn.Module:
        model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
        args = CrossEncoderTrainingArguments(
            output_dir=str(output_dir), num_train_epochs=2, per_device_train_batch_size=8, learning_rate=5e-3,
            eval_strategy="no", save_strategy="epoch", save_total_limit=None, average_checkpoints=True, report_to="none",
            train_sampling_strategy="random", seed=3,
        )  # fmt: skip
        trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=pairs, data_collator=CrossEncoderDataCollator(tokenizer))
        trainer.train(resume_from_checkpoint=resume_from_checkpoint)
        assert trainer.weight_average is not None and trainer.weight_average.steps == [3, 6]
        return model

    model = train(tmp_path / "api")
    epochs = [load_file(tmp_path / "api" / f"checkpoint-{step}" / "model.safetensors") for step in (3, 6)]
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.detach(), (epochs[0][name] + epochs[1][name]) / 2, rtol=0, atol=1e-6)
    # Resuming from a checkpoint outside output_dir takes the running sum from that checkpoint.
    shutil.copytree(tmp_path / "api" / "checkpoint-3", tmp_path / "elsewhere" / "checkpoint-3")
    resumed = train(tmp_path / "api-resumed", resume_from_checkpoint=str(tmp_path / "elsewhere" / "checkpoint-3"))
    for name, param in resumed.named_parameters():
        torch.testing.assert_close(param.detach(), (epochs[0][name] + epochs[1][name]) / 2, rtol=0, atol=1e-6)
