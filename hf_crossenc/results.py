"""`CrossEncoderJobResult`: what a training job returns and writes as results.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.json"


@dataclass
class CrossEncoderJobResult:
    """The saved model's metrics on every labelled split besides train (``metrics["test"]["spearman"]``, with
    ``intervals`` where bootstrap resamples were asked for) and the record of how it was trained (``run``).

    ``to_dict()`` is the content of OUTPUT_DIR/results.json: the splits' metrics at the top level beside ``"run"``.
    """

    output_dir: str
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.metrics, "run": self.run}

    def write(self) -> Path:
        path = Path(self.output_dir, RESULTS_FILE)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, output_dir: str | Path, content: dict[str, Any]) -> CrossEncoderJobResult:
        return cls(str(output_dir), {k: v for k, v in content.items() if k != "run"}, dict(content.get("run") or {}))

    @classmethod
    def read(cls, output_dir: str | Path) -> CrossEncoderJobResult:
        """The results.json of a finished run (`FileNotFoundError` if there is none)."""
        return cls.from_dict(output_dir, json.loads(Path(output_dir, RESULTS_FILE).read_text()))
