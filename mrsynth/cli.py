"""The ``mrsynth`` command: one subcommand per job, each a thin layer over the library."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence

from . import __version__
from .errors import MRSynthError


def _parser() -> argparse.ArgumentParser:
    from .demo import add_demo_parser
    from .ensemble import add_ensemble_parser
    from .evaluation import add_evaluate_parser
    from .grid_search import add_grid_search_parser
    from .kernel_training import add_train_kernel_parser
    from .model_commands import add_models_parser
    from .prepare import add_prepare_parser
    from .register_command import add_register_parser, add_transform_parser
    from .simulate import add_simulate_parser
    from .superres import add_superres_parser
    from .synthesis import add_synthesize_parser
    from .t2_map import add_t2_map_parser
    from .train_command import add_train_parser
    from .transfer import add_transfer_parser

    parser = argparse.ArgumentParser(
        prog="mrsynth",
        description="Deep-learning MRI contrast synthesis: simulate paired data, train, synthesize, evaluate, "
        "and prepare real scans (register, resample, mask, normalise). "
        "Axis triples are always given in the order superior-inferior, anterior-posterior, left-right (SI AP LR).",
    )
    parser.add_argument("--version", action="version", version=f"mrsynth {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (
        add_simulate_parser,
        add_train_parser,
        add_train_kernel_parser,
        add_grid_search_parser,
        add_synthesize_parser,
        add_superres_parser,
        add_t2_map_parser,
        add_transfer_parser,
        add_ensemble_parser,
        add_evaluate_parser,
        add_register_parser,
        add_transform_parser,
        add_prepare_parser,
        add_models_parser,
        add_demo_parser,
    ):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand; user errors print one line to stderr and return 2."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.simplefilter("default")
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    try:
        return int(args.func(args) or 0)
    except MRSynthError as err:
        if args.verbose:
            raise
        print(f"mrsynth {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into head & co.: stop quietly
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"mrsynth {args.command}: interrupted; no partial output was left", file=sys.stderr)
        return 130
