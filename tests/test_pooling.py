"""hf_crossenc.pooling: the bi-encoder pools as the model's sentence-transformers files say (CLS, mean or max),
--teacher_pooling overrides, unsupported poolings are refused, and the bundled MiniLM is unchanged."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from hf_crossenc.bi_encoder import BiEncoder, finetune_bi_encoder
from hf_crossenc.errors import ConfigError
from hf_crossenc.pooling import Pooling, resolve_pooling

TEXTS = ["A man plays a guitar.", "Kids play football in the park today.", "Stocks fell.", "A dog runs."]
ST_PREFIX = "sentence_transformers.models."


def st_folder(tiny_model_dir: Path, folder: Path, pooling: dict | None, modules: list[str] | None = None) -> Path:
    """A copy of the tiny BERT with sentence-transformers files: `modules` (class names) and 1_Pooling/config.json."""
    shutil.copytree(tiny_model_dir, folder)
    modules = modules or ["Transformer", "Pooling", "Normalize"]
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Normalize": "2_Normalize"}
    entries = [{"idx": i, "name": str(i), "path": paths.get(m, f"{i}_{m}"), "type": ST_PREFIX + m} for i, m in enumerate(modules)]
    (folder / "modules.json").write_text(json.dumps(entries))
    if pooling is not None:
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **pooling}))
    return folder


def legacy(mode: str) -> dict:
    keys = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens", "max": "pooling_mode_max_tokens"}
    return {key: name == mode for name, key in keys.items()}


def reference(folder: Path, mode: str) -> np.ndarray:
    """Each text alone through the plain model, pooled by hand and L2-normalised."""
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    rows = []
    with torch.no_grad():
        for text in TEXTS:
            hidden = model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0]
            vector = {"cls": hidden[0], "mean": hidden.mean(0), "max": hidden.max(0).values}[mode]
            rows.append(torch.nn.functional.normalize(vector, dim=-1).numpy())
    return np.stack(rows)


@pytest.mark.parametrize("mode", ["cls", "mean", "max"])
@pytest.mark.parametrize("new_format", [False, True])
def test_embeddings_are_the_pooling_the_files_name(tiny_model_dir, tmp_path, mode, new_format):
    config = {"pooling_mode": mode, "include_prompt": True} if new_format else legacy(mode)
    folder = st_folder(tiny_model_dir, tmp_path / mode, config)
    encoder = BiEncoder(str(folder), batch_size=2, precision="fp32")  # batches of 2: padding is masked out
    assert (encoder.pooling.mode, encoder.pooling.normalize) == (mode, True)
    assert "1_Pooling/config.json" in encoder.pooling.origin
    np.testing.assert_allclose(encoder.encode(TEXTS), reference(folder, mode), atol=2e-5)


def test_cls_and_mean_teachers_give_different_cosines(tiny_model_dir, tmp_path):
    cls = BiEncoder(str(st_folder(tiny_model_dir, tmp_path / "cls", legacy("cls"))), precision="fp32")
    mean = BiEncoder(str(st_folder(tiny_model_dir, tmp_path / "mean", legacy("mean"))), precision="fp32")
    assert not np.allclose(cls.cosine(TEXTS[:2], TEXTS[2:]), mean.cosine(TEXTS[:2], TEXTS[2:]), atol=1e-3)


def test_a_folder_without_sentence_transformers_files_is_mean_pooled_and_says_so(tiny_model_dir, caplog):
    caplog.set_level(logging.INFO, logger="hf_crossenc")
    encoder = BiEncoder(str(tiny_model_dir), precision="fp32")
    assert encoder.pooling.mode == "mean" and encoder.pooling.origin.startswith("assumed")
    assert f"mean pooling, L2-normalised (assumed: no sentence-transformers modules.json in {tiny_model_dir})" in caplog.text
    np.testing.assert_allclose(encoder.encode(TEXTS), reference(tiny_model_dir, "mean"), atol=2e-5)


def test_a_model_without_normalize_is_read_as_such_and_cosines_stay_cosines(tiny_model_dir, tmp_path):
    folder = st_folder(tiny_model_dir, tmp_path / "plain", legacy("cls"), modules=["Transformer", "Pooling"])
    encoder = BiEncoder(str(folder), precision="fp32")
    assert (encoder.pooling.mode, encoder.pooling.normalize) == ("cls", False)
    np.testing.assert_allclose(np.linalg.norm(encoder.encode(TEXTS), axis=1), 1.0, atol=1e-6)


def test_teacher_pooling_overrides_the_files(tiny_model_dir, tmp_path):
    folder = st_folder(tiny_model_dir, tmp_path / "cls", legacy("cls"))
    forced = BiEncoder(str(folder), precision="fp32", pooling="mean")
    assert forced.pooling == Pooling("mean", True, "chosen by the user")
    np.testing.assert_allclose(forced.encode(TEXTS), reference(folder, "mean"), atol=2e-5)
    # An override also rescues a model whose files name a pooling we do not compute.
    odd = st_folder(tiny_model_dir, tmp_path / "odd", {"pooling_mode": "lasttoken"})
    assert BiEncoder(str(odd), precision="fp32", pooling="cls").pooling.mode == "cls"
    with pytest.raises(ConfigError, match="--teacher pooling must be one of auto, mean, cls, max"):
        resolve_pooling(str(folder), "weightedmean")


def test_teacher_pooling_is_a_checked_job_flag():
    from hf_crossenc.arguments import TeacherArguments
    from hf_crossenc.config import parse_job_arguments

    teacher_args = parse_job_arguments(["--train_file", "t.csv", "--teacher", "bundled:all-MiniLM-L6-v2", "--teacher_pooling", "cls"])[2]
    assert teacher_args.teacher_pooling == "cls"
    assert TeacherArguments().teacher_pooling == "auto"
    with pytest.raises(ConfigError, match="--teacher_pooling must be one of auto, mean, cls, max"):
        TeacherArguments(teacher="t", teacher_pooling="lasttoken").check("regression")


@pytest.mark.parametrize(
    ("pooling", "modules", "message"),
    [
        ({"pooling_mode_weightedmean_tokens": True}, None, r"1_Pooling/config.json asks for weightedmean pooling"),
        ({"pooling_mode": "lasttoken"}, None, r"1_Pooling/config.json asks for lasttoken pooling"),
        ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}, None, r"asks for cls \+ mean pooling"),
        ({"pooling_mode": ["cls", "max"]}, None, r"asks for cls \+ max pooling"),
        ({"pooling_mode_mean_sqrt_len_tokens": True}, None, r"asks for mean_sqrt_len_tokens pooling"),
        (None, None, r"modules.json names a Pooling module but 1_Pooling/config.json is missing"),
        (legacy("mean"), ["Transformer", "Pooling", "Dense", "Normalize"], r"modules.json lists sentence_transformers.models.Dense"),
        (legacy("mean"), ["Transformer"], r"modules.json lists 0 Pooling modules"),
    ],
)
def test_unsupported_poolings_are_a_config_error_naming_the_flag_and_file(tiny_model_dir, tmp_path, pooling, modules, message):
    folder = st_folder(tiny_model_dir, tmp_path / "odd", pooling, modules)
    with pytest.raises(ConfigError, match=message) as err:
        resolve_pooling(str(folder))
    assert str(err.value).startswith(f"--teacher {folder}: ")
    with pytest.raises(ConfigError, match=r"^--model "):
        BiEncoder(str(folder), precision="fp32", flag="--model")


def test_unreadable_sentence_transformers_files_are_a_config_error(tiny_model_dir, tmp_path):
    folder = st_folder(tiny_model_dir, tmp_path / "bad", legacy("cls"))
    (folder / "1_Pooling" / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"1_Pooling/config.json cannot be read"):
        resolve_pooling(str(folder))
    (folder / "modules.json").write_text(json.dumps({"type": "x"}))
    with pytest.raises(ConfigError, match=r"modules.json is not a list of modules"):
        resolve_pooling(str(folder))


def test_the_bundled_minilm_is_mean_pooled_and_normalised_with_the_same_embeddings_as_before():
    from hf_crossenc.modeling import bundled_model_path

    path = bundled_model_path()
    pooling = resolve_pooling(str(path))
    assert (pooling.mode, pooling.normalize) == ("mean", True)
    encoder = BiEncoder(str(path), precision="fp32")
    got = encoder.encode(TEXTS)
    # The embeddings the bi-encoder computed before it read the pooling: one length-sorted batch, masked mean, normalised.
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path, use_safetensors=True).eval()
    batch = sorted(TEXTS, key=len)
    with torch.inference_mode():
        enc = tokenizer(batch, padding=True, truncation=True, max_length=128, return_tensors="pt")
        hidden = model(**enc).last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        before = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1).numpy()
    expected = np.stack([before[batch.index(text)] for text in TEXTS])
    assert np.array_equal(got, expected)


def test_finetuned_teacher_trains_and_saves_its_pooling(tiny_model_dir, tmp_path):
    folder = st_folder(tiny_model_dir, tmp_path / "cls", legacy("cls"))
    texts_a, texts_b, labels = TEXTS, TEXTS[::-1], [1.0, 0.2, 0.2, 1.0]
    kwargs = dict(epochs=2, batch_size=2, learning_rate=1e-3, precision="fp32")
    tuned = {}
    for mode in ("cls", "mean"):
        out = finetune_bi_encoder(str(folder), texts_a, texts_b, labels, tmp_path / mode, pooling=Pooling(mode), **kwargs)
        assert resolve_pooling(out).mode == mode  # read back the way it was trained
        tuned[mode] = BiEncoder(out, precision="fp32")
    assert tuned["cls"].pooling.mode == "cls" and tuned["mean"].pooling.mode == "mean"
    # The pooling it trained with is the one whose cosines moved towards the labels.
    cls_cos, mean_cos = tuned["cls"].cosine(texts_a, texts_b), tuned["mean"].cosine(texts_a, texts_b)
    assert not np.allclose(cls_cos, mean_cos, atol=1e-3)


def test_finetuned_teacher_in_its_child_process_keeps_the_pooling(tiny_model_dir, tmp_path):
    import datasets

    from hf_crossenc.arguments import TeacherArguments
    from hf_crossenc.teacher import finetuned_teacher
    from hf_crossenc.training_args import CrossEncoderTrainingArguments

    base = st_folder(tiny_model_dir, tmp_path / "cls", legacy("cls"))
    pairs = datasets.Dataset.from_dict({"text_a": TEXTS, "text_b": TEXTS[::-1], "label": [1.0, 0.2, 0.2, 1.0]})
    teacher_args = TeacherArguments(teacher=str(base), teacher_weight=0.5, teacher_finetune_epochs=1, teacher_precision="fp32")
    training_args = CrossEncoderTrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", seed=3)
    folder = finetuned_teacher(str(base), pairs, np.asarray(pairs["label"]), teacher_args, 32, training_args)
    assert json.loads(Path(folder, "finetune.json").read_text())["pooling"] == "cls"
    assert resolve_pooling(folder) == Pooling("cls", True, f"1_Pooling/config.json of {folder}")
    forced = TeacherArguments(teacher=str(base), teacher_weight=0.5, teacher_finetune_epochs=1, teacher_pooling="mean")
    folder = finetuned_teacher(str(base), pairs, np.asarray(pairs["label"]), forced, 32, training_args)  # replaced, not reused
    assert resolve_pooling(folder).mode == "mean"


@pytest.mark.parametrize("mode", ["cls", "mean"])
def test_same_embeddings_as_sentence_transformers(tiny_model_dir, tmp_path, mode):
    st = pytest.importorskip("sentence_transformers")
    folder = st_folder(tiny_model_dir, tmp_path / mode, legacy(mode))
    ours = BiEncoder(str(folder), precision="fp32").encode(TEXTS)
    theirs = st.SentenceTransformer(str(folder), device="cpu").encode(TEXTS, convert_to_numpy=True)
    np.testing.assert_allclose(ours, theirs, atol=2e-5)
