#!/usr/bin/env bash
# The built wheel on its own, away from the checkout: a new virtualenv (no system site-packages) installs the wheel
# with torch==2.13.0 and no extras (so without matplotlib: the core must run without the plots extra), builds the
# tests' tiny random BERT, trains it for one epoch on 16 pairs with the installed `hf-crossenc train` from a temporary
# folder (the card template is found inside the installed package), checks model.safetensors and the model card, and
# scores a pair with `hf-crossenc predict`. Takes about a minute or two on 2 CPU cores with pip's cache warm.
#
# Usage: bash scripts/wheel_smoke.sh [WHEEL]
#   WHEEL: default the newest dist/hf_crossenc-*.whl (`python -m build` makes it). PYTHON: the interpreter the
#   virtualenv is made from (default python3; 3.11 or newer).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
wheel="${1:-$(ls -t "$repo"/dist/hf_crossenc-*.whl 2>/dev/null | head -n 1 || true)}"
if [ ! -f "$wheel" ]; then
    echo "wheel_smoke: no wheel (run python -m build first, or pass one)" >&2
    exit 2
fi
wheel="$(cd "$(dirname "$wheel")" && pwd)/$(basename "$wheel")"
work="$(mktemp -d "${TMPDIR:-/tmp}/hf_crossenc-smoke.XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$SECONDS
unset PYTHONPATH
export HF_HUB_OFFLINE=1

"${PYTHON:-python3}" -m venv "$work/venv"
py="$work/venv/bin/python"
# torch==2.13.0: on our machines the CPU wheel on local disk (see docs/install.md for other machines).
"$py" -m pip install --quiet --no-compile "torch==2.13.0" -c "$repo/constraints.txt" "$wheel"
echo "wheel_smoke: installed $(basename "$wheel") in $((SECONDS - start)) s"

cd "$work"  # outside the checkout: everything below comes from the virtualenv
"$py" - <<'EOF'
import csv
import importlib.util
import sys

import hf_crossenc
from hf_crossenc.model_card import template_path

for name, path in (("hf_crossenc", hf_crossenc.__file__), ("the card template", template_path())):
    assert str(path).startswith(sys.prefix), f"{name} comes from {path}, not from the virtualenv {sys.prefix}"
assert importlib.util.find_spec("matplotlib") is None, "matplotlib is installed: the wheel should not need it"

subjects = ["A man", "A woman", "A dog", "A child", "The cat", "Two kids", "An old man", "A girl"]
actions = ["plays the guitar.", "rides a bike.", "eats an apple.", "runs in the park."]
for split, offset, n in (("train", 0, 16), ("dev", 1, 8)):
    with open(f"{split}.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["sentence1", "sentence2", "label"])
        for i in range(n):
            a, b = subjects[i % 8], actions[(i + offset) % 4]
            same = i % 2 == 0
            other = b if same else actions[(i + offset + 1) % 4]
            writer.writerow([f"{a} {b}", f"{a} {other}", 4.5 if same else 1.0])
EOF
"$py" "$repo/tests/tiny_model.py" "$work/tiny" >/dev/null
# No evaluation or checkpoints during the two training steps (the tests cover them): the scores of a barely trained
# random model hardly spread, which the trainer's collapse check would report. The validation split is scored at the end.
"$work/venv/bin/hf-crossenc" train --model_name_or_path "$work/tiny" --train_file train.csv --validation_file dev.csv \
    --label_scale 0,5 --output_dir out --num_train_epochs 1 --per_device_train_batch_size 8 --learning_rate 1e-3 \
    --max_length 32 --bootstrap_resamples 0 --seed 7 --disable_tqdm true \
    --eval_strategy no --save_strategy no --load_best_model_at_end false
for file in model.safetensors README.md results.json; do
    test -s "out/$file" || { echo "wheel_smoke: out/$file missing" >&2; exit 1; }
done
head -n 1 out/README.md | grep -qx -- "---" || { echo "wheel_smoke: out/README.md has no front matter" >&2; exit 1; }
"$work/venv/bin/hf-crossenc" predict out --pair "A man plays the guitar." "A man plays the guitar."
echo "wheel_smoke: passed in $((SECONDS - start)) s ($(basename "$wheel"))"
