"""Join a Param-to-Default model and a Default-to-Param model into one Param-to-Param checkpoint.

    PYTHONPATH=. python scripts/chain_reparam.py RUN_P2D/model.pt reparam-default-sim --out CHAINED.pt
    PYTHONPATH=. python scripts/bundle_reparam.py CHAINED.pt

FIRST may also be a chained model (the bundled ``reparam-param-sim``): its first stage is kept and
SECOND replaces its Default-to-Param stage. Several SECOND models (trained alike) make one second stage
that returns their mean, behind the one first stage:

    PYTHONPATH=. python scripts/chain_reparam.py reparam-param-sim RUN_A/model.pt RUN_B/model.pt --out MEAN.pt

The first stage is trained with ``configs/reparam-to-default-sim.yaml``; see mrsynth/reparam_chain.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mrsynth.checkpoint import save_checkpoint
from mrsynth.models import load_model
from mrsynth.reparam_chain import TRANSFER_FORMS, chain_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", help="Param-to-Default model, or a chained one to take the first stage of")
    parser.add_argument(
        "second",
        nargs="+",
        help="Default-to-Param model (a checkpoint or registry name); several make a second stage that is their mean",
    )
    parser.add_argument("--out", type=Path, required=True, help="the chained checkpoint to write")
    parser.add_argument("--name", default="reparam-param-sim")
    parser.add_argument("--version", default="3")
    parser.add_argument(
        "--residual-transfer", type=float, default=0.0, help="the share of what the chain misses of its input to add"
    )
    parser.add_argument(
        "--transfer-form", choices=TRANSFER_FORMS, default="slope", help="reparam_chain.residual_transfer's form"
    )
    args = parser.parse_args()
    network, info = chain_models(
        load_model(args.first),
        [load_model(model) for model in args.second],
        args.name,
        args.version,
        args.residual_transfer,
        args.transfer_form,
    )
    print(f"wrote {save_checkpoint(args.out, network, info)}: {info.name} version {info.version}")


if __name__ == "__main__":
    main()
