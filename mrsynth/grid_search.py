"""Grid search with k-fold cross-validation and repeated seeds (paper 000, section II.D.1), and its command.

Every combination of the grid (e.g. learning rate x batch size x width: the paper's 27) is trained on
each fold's training cases and validated on the fold's held-out cases, once per seed; each run is a
normal training run directory, so an interrupted search resumes where it stopped (finished runs are
kept, a killed one continues from its last checkpoint). ``results.csv`` gets one row per run, and the
combinations are ranked by the median of their best validation losses, as the paper chose its top 10.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from .errors import MRSynthError
from .files import atomic_path

Row = dict[str, Any]


def combinations(grid: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, keys in the order given (dotted keys reach nested settings)."""
    if not grid or any(len(values) == 0 for values in grid.values()):
        raise MRSynthError("the grid needs at least one value per setting, e.g. learning_rate=1e-3,1e-4")
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def folds(cases: Sequence[str], k: int) -> list[tuple[list[str], list[str]]]:
    """k-fold split of case folders: fold i validates on every k-th case from i and trains on the rest."""
    if not 2 <= k <= len(cases):
        raise MRSynthError(f"{k} folds need 2 <= k <= the number of cases ({len(cases)})")
    return [
        ([c for j, c in enumerate(cases) if j % k != i], [c for j, c in enumerate(cases) if j % k == i])
        for i in range(k)
    ]


def _overrides(combination: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in combination.items():
        *parents, leaf = key.split(".")
        target = nested
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return nested


def _merged(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` merged in, nested dicts key by key."""
    out = dict(base)
    for key, value in update.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _run_name(combination: dict[str, Any], fold: int, seed: int) -> str:
    parts = [f"{key.split('.')[-1]}={value}" for key, value in combination.items()]
    return "_".join(parts + [f"fold={fold}", f"seed={seed}"])


def run_grid(
    config: dict[str, Any],
    grid: dict[str, Sequence[Any]],
    cases: Sequence[str],
    out_dir: str | Path,
    *,
    k: int = 5,
    seeds: Sequence[int] = (0,),
    on_run: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Train every (combination, fold, seed); returns one row per run, also written to results.csv."""
    from .checkpoint import read_checkpoint
    from .training import load_config, train

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for combination in combinations(grid):
        for fold, (train_cases, val_cases) in enumerate(folds(cases, k)):
            for seed in seeds:
                run_dir = out / _run_name(combination, fold, seed)
                model = run_dir / "model.pt"
                if not model.is_file():
                    split = {"seed": seed, "data": {"train": list(train_cases), "val": list(val_cases)}}
                    run_config = load_config(None, _merged(_merged(config, _overrides(combination)), split))
                    resume = run_dir if (run_dir / "checkpoints" / "last.pt").is_file() else None
                    model = train(run_config, None if resume else run_dir, resume=resume)
                training = read_checkpoint(model)["info"]["training"]
                row = {**combination, "fold": fold, "seed": seed, "best_val_loss": training["best_val_loss"]}
                row |= {"iterations": training["iterations"], "run": run_dir.name}
                rows.append(row)
                if on_run is not None:
                    on_run(row)
    _write_rows(rows, out / "results.csv")
    return rows


def _write_rows(rows: list[Row], path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def ranking(rows: Sequence[Row], keys: Sequence[str]) -> list[tuple[dict[str, Any], float]]:
    """Combinations ordered by the median of their runs' best validation losses, best first."""
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        groups.setdefault(tuple(row[key] for key in keys), []).append(float(row["best_val_loss"]))
    ranked = sorted(groups.items(), key=lambda item: statistics.median(item[1]))
    return [(dict(zip(keys, values, strict=True)), statistics.median(losses)) for values, losses in ranked]


def _parse_grid(entries: Sequence[str]) -> dict[str, list[Any]]:
    grid = {}
    for entry in entries:
        key, sep, values = entry.partition("=")
        if not sep or not values:
            raise MRSynthError(f"grid entry {entry!r} must look like setting=value1,value2 (e.g. batch_size=8,16)")
        grid[key] = [yaml.safe_load(v) for v in values.split(",")]
    return grid


def add_grid_search_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "grid-search",
        help="grid search with k-fold cross-validation and repeated seeds (paper 000, II.D.1)",
        description="Train every combination of --grid on k folds of the cases, once per seed, then rank the "
        "combinations by the median best validation loss. Resumable: run the same command again.",
    )
    parser.add_argument("config", help="base training config (YAML); its data.train/val are replaced per fold")
    parser.add_argument("--cases", nargs="+", required=True, help="case folders (globs allowed)")
    parser.add_argument("--grid", nargs="+", required=True, metavar="SETTING=V1,V2", help="e.g. model.width=8,16")
    parser.add_argument("--folds", type=int, default=5, help="k of k-fold cross-validation (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="repetitions (default: 0)")
    parser.add_argument("--out-dir", required=True, help="folder for the runs and results.csv")
    parser.set_defaults(func=run_grid_search)


def run_grid_search(args: argparse.Namespace) -> int:
    import glob

    from .training import load_config

    cases = sorted({match for pattern in args.cases for match in (glob.glob(pattern) or [pattern])})
    grid = _parse_grid(args.grid)
    config = load_config(args.config)

    def report(row: Row) -> None:
        print(f"{row['run']}: best validation loss {row['best_val_loss']:.5f} after {row['iterations']} iterations")

    rows = run_grid(config, grid, cases, args.out_dir, k=args.folds, seeds=args.seeds, on_run=report)
    print("ranking (median best validation loss over folds and seeds):")
    for place, (combination, loss) in enumerate(ranking(rows, list(grid)), start=1):
        print(f"{place:>3}. {combination}: {loss:.5f}")
    return 0
