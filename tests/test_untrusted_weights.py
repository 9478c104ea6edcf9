"""Pickle weights are never unpickled unless the user says they trust them."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_crossenc import CrossEncoderPredictor
from hf_crossenc.cli import main as cli_main
from hf_crossenc.commands.train import main as train_main
from hf_crossenc.errors import ConfigError


class Exploit:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.fixture
def pickle_model(tmp_path, tiny_model_dir):
    folder = tmp_path / "pickled"
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    model.config.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    marker = tmp_path / "PWNED"
    with (folder / "pytorch_model.bin").open("wb") as f:
        pickle.dump({"weights": Exploit(str(marker)), "x": torch.zeros(1)}, f)
    return folder, marker


def test_predictor_refuses_pickle_weights(pickle_model):
    folder, marker = pickle_model
    with pytest.raises(ConfigError, match="only pickle weights.*trust_pickle_weights"):
        CrossEncoderPredictor.from_pretrained(folder)
    assert not marker.exists()


def test_cli_predict_refuses_pickle_weights(pickle_model, capsys):
    folder, marker = pickle_model
    assert cli_main(["predict", str(folder), "--pair", "a", "b"]) == 2
    assert "pytorch_model.bin" in capsys.readouterr().err
    assert not marker.exists()


def test_training_refuses_pickle_base_model(pickle_model, stsb_slices, tmp_path, capsys):
    folder, marker = pickle_model
    out = tmp_path / "out"
    code = train_main(["--model_name_or_path", str(folder), "--train_file", str(stsb_slices["train"]),
                       "--validation_file", str(stsb_slices["validation"]), "--label_scale", "0,5", "--output_dir", str(out)])  # fmt: skip
    assert code == 2 and "--trust_pickle_weights" in capsys.readouterr().err
    assert not marker.exists() and not out.exists()
