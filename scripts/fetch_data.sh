#!/usr/bin/env bash
# Fetch STS-B (English) into DEST/stsb for machines that do not have ../shared/data (e.g. GitHub runners).
# Our own CI machines already have ../shared/data and never run this.
set -euo pipefail
dest="${1:-../shared/data}"
mkdir -p "$dest/stsb"
base="https://raw.githubusercontent.com/PhilipMay/stsb-multi-mt/main/data"
for pair in "train:train" "dev:dev" "test:test"; do
  split="${pair%%:*}"
  curl -fsSL "$base/stsb-en-$split.csv" \
    | python3 -c 'import csv,sys; w=csv.writer(sys.stdout); w.writerow(["sentence1","sentence2","similarity_score"]); [w.writerow([r[0],r[1],r[2]]) for r in csv.reader(sys.stdin)]' \
    > "$dest/stsb/$split.csv"
done
echo "STS-B written to $dest/stsb"
