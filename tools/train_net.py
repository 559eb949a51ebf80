#!/usr/bin/env python
"""Train or evaluate a model from a config (the trainer is ``TRAINER.NAME``).

    python tools/train_net.py --config-file configs/Market/cdnet.yml
    python tools/train_net.py --config-file configs/Market/cdnet.yml --eval-only MODEL.WEIGHTS model.pth
    python tools/train_net.py --config-file configs/Market/cdnet.yml --resume
    python tools/train_net.py --config-file configs/Market/cdnet.yml --num-gpus 2
    python tools/train_net.py --config-file configs/Search/cdnet_topk.yml   # architecture search
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

import cdnet_reid.search  # noqa: E402,F401  (registers SearchTrainer)
from cdnet_reid.engine import main  # noqa: E402

if __name__ == "__main__":
    main()
