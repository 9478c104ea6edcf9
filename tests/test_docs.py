"""The README and every page of docs/ name only flags that exist, and their links resolve."""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Flags of other tools the docs show in commands: accelerate launch and ruff; pip and twine.
OTHER_TOOLS = {
    "multi_gpu",
    "num_processes",
    "cpu",
    "config_file",
    "machine_rank",
    "num_cpu_threads_per_process",
    "check",
    "num_machines",
    "mixed_precision",
    "dynamo_backend",
    "main_process_ip",  # accelerate launch, several machines and FSDP (docs/distributed.md)
    "main_process_port",
    "fsdp_transformer_layer_cls_to_wrap",
}
OTHER_TOOLS |= {"index-url", "strict"}


def option_names(parser: argparse.ArgumentParser) -> set[str]:
    """Every long option of a parser and of its subcommands, without the dashes."""
    names = set()
    for action in parser._actions:
        names.update(option.lstrip("-") for option in action.option_strings if option.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                names |= option_names(sub)
    return names


def known_flags() -> set[str]:
    from hf_crossenc import cli
    from hf_crossenc.commands import mine
    from hf_crossenc.config import build_parser

    spec = importlib.util.spec_from_file_location("bench", REPO / "scripts" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    spec = importlib.util.spec_from_file_location("bench_mining", REPO / "scripts" / "bench_mining.py")
    bench_mining = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_mining)
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "scripts" / "bench_scale.py")
    bench_scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_scale)
    parsers = (build_parser(), cli.build_parser(), mine.build_parser(), bench.build_parser(), bench_mining.build_parser(),
               bench_scale.build_parser())  # fmt: skip
    return set().union(*(option_names(parser) for parser in parsers)) | OTHER_TOOLS | deprecated_flags()


def deprecated_flags() -> set[str]:
    """Old names of renamed flags, still accepted with a warning: docs/flags.md lists them, the experiment log's commands use them."""
    try:
        from hf_crossenc.arguments import DEPRECATED_NAMES
    except ImportError:  # a version before the renames
        return set()
    return set(DEPRECATED_NAMES)


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_every_flag_the_docs_name_exists(doc):
    named = set(re.findall(r"(?<![\w-])--([a-z][a-z0-9_-]*[a-z0-9])", doc.read_text(encoding="utf-8")))
    assert named, f"no flags found in {doc.name}: the pattern is broken"
    assert sorted(named - known_flags()) == []


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_relative_links_resolve(doc):
    links = re.findall(r"\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8"))
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert local or doc.name != "README.md", "no relative links found in the README: the pattern is broken"
    for link in local:
        path, _, anchor = link.partition("#")
        target = (doc.parent / path).resolve() if path else doc
        assert target.is_file(), f"{doc.name}: {link} points at a missing file"
        if anchor:
            headings = re.findall(r"^#{1,6} (.+)$", target.read_text(encoding="utf-8"), flags=re.MULTILINE)
            assert anchor in {github_anchor(h) for h in headings}, f"{doc.name}: {link} names no heading of {target.name}"


def test_github_anchor_matches_githubs_rule():
    assert github_anchor("Speed, side by side with sentence-transformers") == "speed-side-by-side-with-sentence-transformers"
    assert github_anchor("STS-B: the default job and how its recipe was chosen") == "sts-b-the-default-job-and-how-its-recipe-was-chosen"
    assert github_anchor("Pair classification (`--task classification`)") == "pair-classification---task-classification"
