"""Fine-tune a cross-encoder: `accelerate launch scripts/train.py [--config configs/stsb.yaml] [--flag value ...]`.

With no arguments it trains the default job: configs/stsb.yaml (STS-B from ../shared/data/stsb on the bundled MiniLM).
`python scripts/train.py --help` lists every flag (model, data, teacher and Trainer arguments).
"""

import sys

from hf_crossenc.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
