"""More than one machine, FSDP and DeepSpeed: the shipped accelerate configs, run for real where this CPU-only host can.

- Two "machines" on 127.0.0.1 (two `accelerate launch` processes of configs/accelerate/multi_node_cpu.yaml, machine
  ranks 0 and 1) train the same seeded tiny job as one machine with 2 processes, to the same bits. The job's pairs are
  synthetic, written into the test's folder (`write_pairs`): these tests need no ../shared/data and run everywhere.
- configs/accelerate/fsdp.yaml trains the tiny model with FSDP2 over 2 gloo ranks. accelerate 1.15 ignores
  `distributed_type: FSDP` when the ranks run on CPU (it only enables FSDP for GPU-like devices, see
  docs/distributed.md), so the launched script routes it first (FSDP_ON_CPU below); torch's own FSDP2 then runs on CPU.
- The DeepSpeed ZeRO-2/3 configs are only read (deepspeed is not installed, and accelerate runs it only on GPUs).
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "accelerate"
TRAIN = REPO / "scripts" / "train.py"
TIMEOUT = 300
"""Seconds a launch may take: a run takes ~15 s here; a hung collective must fail the test, not block it."""

FSDP_ON_CPU = '''"""Run hf_crossenc's train command under FSDP on CPU ranks (test only).

accelerate 1.15 sets distributed_type FSDP only for GPU-like devices; ranks on CPU stay MULTI_CPU (plain DDP) even
with `distributed_type: FSDP`. Here the AcceleratorState the Trainer creates with an FSDP plugin on MULTI_CPU is
switched to FSDP, as on GPUs. A hung collective dumps every thread's stack and exits after 240 s.
"""
import faulthandler
import sys

faulthandler.dump_traceback_later(240, exit=True)

import accelerate.state as state
from accelerate.utils import DistributedType

_init = state.AcceleratorState.__init__


def _fsdp_on_cpu(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    plugin = kwargs.get("fsdp_plugin")
    if plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type, self.fsdp_plugin = DistributedType.FSDP, plugin
        state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP


state.AcceleratorState.__init__ = _fsdp_on_cpu

from hf_crossenc.commands.train import main

sys.exit(main())
'''


WORDS = [
    "a", "man", "woman", "child", "dog", "cat", "plane", "car", "is", "plays", "rides", "eats", "the", "guitar",
    "horse", "bread", "ball", "park", "street", "river", "quickly", "slowly", "red", "small", "old", "young",
]  # fmt: skip


def write_pairs(path: Path, rows: int, seed: int) -> Path:
    """Synthetic STS-B-like pairs (sentence1, sentence2, similarity_score in [0, 5]): sentence2 is sentence1 with some
    words replaced, and the score is 5 x the share of words kept, so the tiny model has something to learn."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence1", "sentence2", "similarity_score"])
        for _ in range(rows):
            first = [rng.choice(WORDS) for _ in range(rng.randint(4, 10))]
            keep = rng.random()
            second = [word if rng.random() < keep else rng.choice(WORDS) for word in first]
            same = sum(a == b for a, b in zip(first, second)) / len(first)
            writer.writerow([" ".join(first).capitalize() + ".", " ".join(second).capitalize() + ".", f"{5 * same:.1f}"])
    return path


@pytest.fixture(scope="module")
def job(tmp_path_factory, tiny_model_dir) -> list[str]:
    """The seeded tiny job's flags: fp32 and 1 thread per process, so any two runs of it compute the same bits. Its
    data (96 training, 48 validation and 48 test pairs) is written here: the test needs no benchmark files."""
    data = tmp_path_factory.mktemp("pairs")
    train = write_pairs(data / "train.csv", 96, seed=1)
    validation = write_pairs(data / "dev.csv", 48, seed=2)
    test = write_pairs(data / "test.csv", 48, seed=3)
    return [
        "--model_name_or_path", str(tiny_model_dir), "--train_file", str(train), "--validation_file", str(validation),
        "--test_file", str(test), "--label_scale", "0,5", "--num_train_epochs", "2", "--per_device_train_batch_size", "8",
        "--learning_rate", "5e-4", "--logging_steps", "5", "--max_length", "64", "--seed", "7", "--disable_tqdm", "true",
        "--bf16", "false", "--cpu_threads", "1",
    ]  # fmt: skip


def launch_command(launch_flags: list[str], script: Path, script_flags: list[str]) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", *launch_flags, str(script), *script_flags]


def run_together(cwd: Path, commands: list[list[str]]) -> None:
    """Start every command at once (offline, 1 OMP thread as `accelerate launch` sets) and wait for all. The first
    failure, or a run past TIMEOUT, kills every process still running and fails the test with each one's stderr."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    logs = [cwd / f"launch{i}.log" for i in range(len(commands))]
    procs: list[subprocess.Popen] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        for cmd, log in zip(commands, logs):
            with log.open("w") as stderr:
                procs.append(subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=stderr))
        while any(p.poll() is None for p in procs) and not any(p.poll() for p in procs) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    codes = [proc.returncode for proc in procs]
    failed = [f"launch {i} exited {code}:\n{log.read_text()[-5000:]}" for i, (code, log) in enumerate(zip(codes, logs)) if code]
    assert not failed, f"(time limit {TIMEOUT} s)\n" + "\n\n".join(failed)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def one_machine(tmp_path_factory, job) -> Path:
    """The reference: the job on one machine with 2 processes (`--multi_gpu --num_processes 2`, gloo)."""
    cwd = tmp_path_factory.mktemp("one_machine")
    flags = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    run_together(cwd, [launch_command(flags, TRAIN, [*job, "--output_dir", str(cwd / "out")])])
    return cwd / "out"


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = load_file(a), load_file(b)
    assert sorted(left) == sorted(right)
    different = [name for name in left if not (left[name].dtype == right[name].dtype and left[name].equal(right[name]))]
    assert not different, different


def test_two_machines_on_one_host_match_one_machine(tmp_path, job, one_machine):
    """Machine ranks 0 and 1 of multi_node_cpu.yaml (1 process each) rendezvous at 127.0.0.1: world size 2, and the
    model and every final metric are those of the 2-process run on one machine. --output_dir is shared, as on a
    cluster filesystem; only machine 0 writes the model, card and results.json."""
    out, port = tmp_path / "out", str(free_port())
    machines = [
        launch_command(
            ["--config_file", str(CONFIGS / "multi_node_cpu.yaml"), "--machine_rank", str(rank),
             "--main_process_ip", "127.0.0.1", "--main_process_port", port],
            TRAIN, [*job, "--output_dir", str(out)],
        )
        for rank in (0, 1)
    ]  # fmt: skip
    run_together(tmp_path, machines)
    two, one = results(out), results(one_machine)
    assert two["run"]["world_size"] == one["run"]["world_size"] == 2
    assert two["run"]["global_batch_size"] == one["run"]["global_batch_size"] == 16
    assert two["run"]["global_steps"] == one["run"]["global_steps"] == 12
    for split in ("validation", "test"):
        assert two[split] == one[split], split  # exactly: the same bits, bootstrap intervals included
    assert two["run"]["best_model_checkpoint"] == one["run"]["best_model_checkpoint"]
    assert_same_weights(out / "model.safetensors", one_machine / "model.safetensors")
    assert sorted(p.name for p in out.glob("checkpoint-*/rng_state_*.pth")) == sorted(
        p.name for p in one_machine.glob("checkpoint-*/rng_state_*.pth")
    )  # every rank's state lands in the shared checkpoints, as on one machine


def fsdp_on_cpu(cwd: Path, job: list[str], out: Path, *extra: str, machines: int = 1) -> None:
    """The job under configs/accelerate/fsdp.yaml on 2 CPU ranks (FSDP routed by FSDP_ON_CPU), on one machine or one
    rank on each of 2 machines at 127.0.0.1."""
    script = cwd / "fsdp_on_cpu.py"
    script.write_text(FSDP_ON_CPU)
    flags = ["--config_file", str(CONFIGS / "fsdp.yaml"), "--num_processes", "2", "--mixed_precision", "no",
             "--fsdp_transformer_layer_cls_to_wrap", "BertLayer"]  # fmt: skip
    if machines > 1:
        port = str(free_port())
        per_machine = [
            [*flags, "--num_machines", str(machines), "--machine_rank", str(rank),
             "--main_process_ip", "127.0.0.1", "--main_process_port", port]
            for rank in range(machines)
        ]  # fmt: skip
    else:
        per_machine = [flags]
    run_together(cwd, [launch_command(launch, script, [*job, "--output_dir", str(out), *extra]) for launch in per_machine])


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory, job) -> Path:
    cwd = tmp_path_factory.mktemp("fsdp")
    fsdp_on_cpu(cwd, job, cwd / "out")
    return cwd / "out"


def test_fsdp_on_cpu_gathers_one_safetensors_file(fsdp_run, one_machine):
    """configs/accelerate/fsdp.yaml with 2 CPU ranks: the parameters are sharded (FSDP2) while training, and every
    checkpoint and the final model are gathered into one model.safetensors that from_pretrained loads - the same
    tensors as the DDP run's, bit for bit (fp32, 1 thread), and the same metrics."""
    from transformers import AutoModelForSequenceClassification

    out = fsdp_run
    top_level = sorted(p.name for p in out.iterdir() if p.is_file())
    assert [name for name in top_level if "model" in name] == ["model.safetensors"], top_level
    checkpoints = sorted(out.glob("checkpoint-*"))
    assert [c.name for c in checkpoints] == ["checkpoint-12", "checkpoint-6"]
    for checkpoint in checkpoints:
        # accelerate's FSDP model and optimizer state (for --resume) instead of DDP's optimizer.pt
        assert (checkpoint / "pytorch_model_fsdp.bin").is_file() and (checkpoint / "optimizer.bin").is_file()
        assert not (checkpoint / "optimizer.pt").exists()
        assert_same_weights(checkpoint / "model.safetensors", one_machine / checkpoint.name / "model.safetensors")
    assert_same_weights(out / "model.safetensors", one_machine / "model.safetensors")

    model, info = AutoModelForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched weights
    fsdp, ddp = results(out), results(one_machine)
    assert fsdp["run"]["world_size"] == 2
    for split in ("validation", "test"):
        assert fsdp[split] == ddp[split], split
    # The card's example scores come from the gathered copy (a forward on rank 0 alone would hang under FSDP).
    heading = "### Example scores"
    card, reference = (folder.joinpath("README.md").read_text() for folder in (out, one_machine))
    assert heading in card and card.split(heading)[1].split("###")[0] == reference.split(heading)[1].split("###")[0]


@pytest.mark.slow
def test_fsdp_checkpoint_resumes_to_the_same_model(tmp_path, job, fsdp_run):
    """--resume from an FSDP checkpoint (accelerate's pytorch_model_fsdp.bin + optimizer.bin, no optimizer.pt)
    continues the run: checkpoint-12 and the final metrics are those of the uninterrupted run."""
    out = tmp_path / "out"
    out.mkdir()
    shutil.copytree(fsdp_run / "checkpoint-6", out / "checkpoint-6")
    shutil.copy(fsdp_run / "run_fingerprint.json", out)
    fsdp_on_cpu(tmp_path, job, out, "--resume", "true")
    assert_same_weights(out / "checkpoint-12" / "model.safetensors", fsdp_run / "checkpoint-12" / "model.safetensors")
    assert_same_weights(out / "model.safetensors", fsdp_run / "model.safetensors")
    resumed, uninterrupted = results(out), results(fsdp_run)
    for split in ("validation", "test"):
        assert resumed[split] == uninterrupted[split], split


@pytest.mark.slow
def test_fsdp_across_two_machines(tmp_path, job, fsdp_run):
    """fsdp.yaml with `--num_machines 2`, one rank per machine: the same model and metrics as on one machine."""
    out = tmp_path / "out"
    fsdp_on_cpu(tmp_path, job, out, machines=2)
    assert results(out)["run"]["world_size"] == 2
    assert_same_weights(out / "model.safetensors", fsdp_run / "model.safetensors")
    for split in ("validation", "test"):
        assert results(out)[split] == results(fsdp_run)[split], split


def test_fsdp_checkpoints_count_as_complete(tmp_path):
    """accelerate's FSDP checkpoint (optimizer.bin instead of optimizer.pt) can be resumed from; either optimizer
    file missing or truncated still cannot."""
    import torch
    from safetensors.torch import save_file

    from hf_crossenc.checkpoints import checkpoint_problem, latest_complete_checkpoint

    folder = tmp_path / "checkpoint-6"
    folder.mkdir()
    (folder / "trainer_state.json").write_text("{}")
    save_file({"w": torch.ones(2)}, folder / "model.safetensors")
    assert checkpoint_problem(folder) == "optimizer.pt is missing"
    torch.save({"state": {}}, folder / "optimizer.bin")
    torch.save({"w": torch.ones(2)}, folder / "pytorch_model_fsdp.bin")
    assert checkpoint_problem(folder) is None and latest_complete_checkpoint(tmp_path) == folder
    (folder / "optimizer.bin").write_bytes(b"PK\x03\x04cut off")
    assert checkpoint_problem(folder) == "optimizer.bin is truncated"


@pytest.mark.slow
def test_two_machines_with_their_own_output_dirs(tmp_path, job, one_machine):
    """Without a shared --output_dir the final model and metrics are still right (rank 0 writes and scores them), but
    machine 1 keeps only its rng states: nothing to resume from there (docs/distributed.md)."""
    port = str(free_port())
    machines = [
        launch_command(
            ["--config_file", str(CONFIGS / "multi_node_cpu.yaml"), "--machine_rank", str(rank),
             "--main_process_ip", "127.0.0.1", "--main_process_port", port],
            TRAIN, [*job, "--output_dir", str(tmp_path / f"machine{rank}")],
        )
        for rank in (0, 1)
    ]  # fmt: skip
    run_together(tmp_path, machines)
    assert results(tmp_path / "machine0")["test"] == results(one_machine)["test"]
    assert_same_weights(tmp_path / "machine0" / "model.safetensors", one_machine / "model.safetensors")
    on_machine1 = sorted(str(p.relative_to(tmp_path / "machine1")) for p in (tmp_path / "machine1").rglob("*") if p.is_file())
    assert on_machine1 == ["checkpoint-12/rng_state_1.pth", "checkpoint-6/rng_state_1.pth"]


@pytest.mark.slow
def test_accelerate_runs_the_fsdp_config_as_ddp_on_cpu(tmp_path, job):
    """What users get from `accelerate launch --config_file configs/accelerate/fsdp.yaml` on a CPU-only machine with
    accelerate 1.15: DDP, not FSDP (the docs say so; this fails once accelerate honours FSDP on CPU)."""
    out = tmp_path / "out"
    flags = ["--config_file", str(CONFIGS / "fsdp.yaml"), "--num_processes", "2", "--mixed_precision", "no",
             "--fsdp_transformer_layer_cls_to_wrap", "BertLayer"]  # fmt: skip
    run_together(tmp_path, [launch_command(flags, TRAIN, [*job, "--output_dir", str(out)])])
    checkpoints = sorted(out.glob("checkpoint-*"))
    assert checkpoints and all((c / "optimizer.pt").is_file() and not (c / "pytorch_model_fsdp.bin").exists() for c in checkpoints)
    assert results(out)["run"]["world_size"] == 2


@pytest.mark.parametrize(
    ("name", "kind", "processes", "machines"),
    [
        ("multi_node_cpu.yaml", "MULTI_GPU", 2, 2),
        ("fsdp.yaml", "FSDP", 4, 1),
        ("deepspeed_zero2.yaml", "DEEPSPEED", 4, 1),
        ("deepspeed_zero3.yaml", "DEEPSPEED", 4, 1),
    ],
)
def test_accelerate_reads_the_shipped_config(name, kind, processes, machines):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / name))
    assert (str(config.distributed_type).split(".")[-1], config.num_processes, config.num_machines) == (kind, processes, machines)
    assert config.num_processes % config.num_machines == 0  # accelerate starts num_processes / num_machines per machine
    text = (CONFIGS / name).read_text()
    assert f"accelerate launch --config_file configs/accelerate/{name}" in text  # the header shows the command


def test_fsdp_config_gathers_full_state_dicts():
    from accelerate.commands.config.config_args import load_config_from_file

    fsdp = load_config_from_file(str(CONFIGS / "fsdp.yaml")).fsdp_config
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP" and fsdp["fsdp_transformer_layer_cls_to_wrap"]


@pytest.mark.parametrize(("name", "stage"), [("deepspeed_zero2.yaml", 2), ("deepspeed_zero3.yaml", 3)])
def test_deepspeed_configs_make_accelerate_plugins(name, stage):
    """Each deepspeed_config key is a DeepSpeedPlugin field (as `accelerate launch` passes them); ZeRO-3 gathers the
    model into one 16-bit file on save; batch size, accumulation and clipping stay the Trainer's ("auto")."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DeepSpeedPlugin

    settings = load_config_from_file(str(CONFIGS / name)).deepspeed_config
    ds = DeepSpeedPlugin(**settings).deepspeed_config
    assert ds["zero_optimization"]["stage"] == stage
    assert ds["zero_optimization"].get("stage3_gather_16bit_weights_on_model_save", False) is (stage == 3)
    assert ds["train_micro_batch_size_per_gpu"] == "auto" and "gradient_clipping" not in settings
    assert "gradient_accumulation_steps" not in settings
