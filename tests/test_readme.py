"""The README's low-level example (the `CrossEncoderTrainer` block of "The Python API") runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
MODEL_LINE = "model_path = bundled_model_path()"


def trainer_block() -> str:
    """The README's fenced python block that builds a `CrossEncoderTrainer`."""
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    found = [block for block in blocks if "CrossEncoderTrainer(" in block]
    assert len(found) == 1, f"expected one python block with CrossEncoderTrainer( in the README, found {len(found)}"
    return found[0]


def test_readme_trainer_example_runs(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    code = trainer_block()
    assert code.count(MODEL_LINE) == 1, f"the block must set the model path in one line: {MODEL_LINE!r}"
    # The tiny test model instead of the bundled MiniLM: the same code, seconds instead of a minute.
    code = code.replace(MODEL_LINE, f"model_path = {str(tiny_model_dir)!r}")
    exec(compile(code, f"{README.name} (CrossEncoderTrainer block)", "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out
    assert "eval_spearman" in printed, printed
    saved = tmp_path / "outputs" / "my-trainer-model"
    assert (saved / "model.safetensors").is_file() and (saved / "config.json").is_file()
