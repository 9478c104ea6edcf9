"""`hf-crossenc data fetch {stsb,trecqa,msrp,all} [--dest DIR]`: download the benchmark sets of the shipped configs
from their pinned sources, convert them to our CSV files and check every sha256 (`hf_crossenc.benchmarks`)."""

from __future__ import annotations

import argparse
from typing import Any

from ..benchmarks import BENCHMARKS, fetch_benchmark, verify_benchmark
from .common import EPILOG

DEFAULT_DEST = "../shared/data"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "data",
        help="fetch the benchmark sets of the shipped configs (STS-B, TREC QA, MSRP) into ../shared/data",
        description="The benchmark sets the shipped configs read from ../shared/data.",
        epilog=EPILOG,
    )
    actions = parser.add_subparsers(dest="data_command", required=True)
    fetch = actions.add_parser(
        "fetch",
        help="download a set from its pinned source, convert it and check every file's sha256",
        description="Download a benchmark set from its source repository at a pinned commit, convert it to the CSV files the "
        "configs name and check every file's sha256; DEST/<set>/ is written only when every file is right. Downloads even "
        "with HF_HUB_OFFLINE=1 (you asked for it).",
        epilog=EPILOG,
    )
    fetch.add_argument("name", choices=[*BENCHMARKS, "all"], help="the set to fetch, or all of them")
    fetch.add_argument("--dest", default=DEFAULT_DEST, help=f"folder that gets one sub-folder per set (default: {DEFAULT_DEST})")
    fetch.add_argument("--overwrite", action="store_true", help="replace a set's folder whose files are not the pinned ones")
    return parser


def run(args: argparse.Namespace) -> int:
    """Fetch each named set into DEST/<set>/; a set already there with the right checksums is left alone."""
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    for name in names:
        bench = BENCHMARKS[name]
        present = not verify_benchmark(name, f"{args.dest}/{name}")
        folder = fetch_benchmark(name, args.dest, overwrite=args.overwrite)
        files = ", ".join(bench.sha256)
        state = "already there" if present else f"from github.com/{bench.repository} at {bench.commit[:7]}"
        print(f"{bench.title}: {files} in {folder} ({state}; sha256 checked)")
    return 0
