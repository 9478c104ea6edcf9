"""hf_crossenc.commands.rank: the rank command (`hf-crossenc rank`)."""

from __future__ import annotations

from transformers import AutoTokenizer


def test_rank_cli_reads_one_passage_per_line_and_refuses_classifiers(tiny_model_dir, tmp_path, capsys) -> None:
    import json

    from transformers import AutoModelForSequenceClassification

    from hf_crossenc.cli import main as cli_main

    scorer = tmp_path / "scorer"
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).save_pretrained(scorer)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(scorer)
    passages = tmp_path / "passages.txt"
    passages.write_text("first line\u2028still the first\n\nsecond\n", encoding="utf-8")
    assert cli_main(["rank", str(scorer), "--query", "a query", "--passages", str(passages)]) == 0
    ranked = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["passage"] for r in ranked) == ["first line\u2028still the first", "second"]

    classifier = tmp_path / "classifier"
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=3).save_pretrained(classifier)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(classifier)
    assert cli_main(["rank", str(classifier), "--query", "a query", "--passages", str(passages)]) == 2
    assert "multi-class classifier" in capsys.readouterr().err
