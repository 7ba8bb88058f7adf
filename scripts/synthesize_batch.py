"""Run an MRSynth model over many cases, e.g. a cohort split over a cluster job array.

    python scripts/synthesize_batch.py MODEL CASE_DIR... --out-dir OUT [--reference TSE_HR] [--shard i/n]
        [--param TR=2000 --param TE=80] [--precision bfloat16] [--batch-size 8]
    Slicer --no-main-window --python-script scripts/synthesize_batch.py -- MODEL --cases-dir DIR --out-dir OUT

A case is a folder holding the model's inputs as ``<input name>.<ext>`` (e.g. ``GE_aOP.nii.gz``,
``GE_aIP.nii.gz``; any format SimpleITK reads), and optionally a reference and masks named with
``--reference``, ``--mask``, ``--bone-mask``. Each case gets ``OUT/<case>/`` with ``hr.nrrd`` (the
synthetic volume), ``lr.nrrd`` (High-to-low models), with a reference ``re.nrrd``, ``dssim.nrrd`` and
``metrics.json``, and a ``log.txt``. One CSV (default ``OUT/metrics[-shard-i-of-n].csv``) has a row
per case and region. ``--shard i/n`` (i from 0 to n-1) keeps every n-th case of the sorted list, so
``--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`` splits a cohort over a job array. A failing
case is logged in the CSV and the others go on; the exit code is 1 if any failed. Settings that would
fail every case (a conditioned model's ``--param`` values, a precision the device cannot run) are
checked once, before the first case, and end the run with exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "MRSynthSlicerLib").is_dir():
    sys.path.insert(0, str(ROOT))

SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
COLUMNS = ["case", "status", "region", "mae", "mi", "ssim", "psnr", "voxels", "seconds", "error"]


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard {text!r} is not i/n (e.g. 0/4)") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard {text}: need 0 <= i < n")
    return index, count


def parser() -> argparse.ArgumentParser:
    from mrsynth.inference import PRECISIONS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model", help="registered model name or checkpoint file")
    p.add_argument("cases", nargs="*", type=Path, help="case folders")
    p.add_argument("--cases-dir", type=Path, help="a folder whose sub-folders are the cases")
    p.add_argument("--list", type=Path, help="a text file with one case folder per line")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--inputs", nargs="+", help="file names (without extension) of the inputs; default: the model's")
    p.add_argument("--reference", help="file name (without extension) of the reference, e.g. TSE_HR")
    p.add_argument("--mask", help="file name of the body mask (normalisation and metrics)")
    p.add_argument("--bone-mask", help="file name of the bone mask (second set of metrics)")
    p.add_argument("--task", choices=["contrast-synthesis", "super-resolution"], default="contrast-synthesis")
    p.add_argument("--preset", choices=["fast", "paper", "smooth"], default="fast")
    p.add_argument("--stride", nargs=3, type=int, metavar=("SI", "AP", "LR"), help="sliding-window stride")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="acquisition parameter of a conditioned model, once per parameter (as mrsynth synthesize --param)",
    )
    p.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        default="float32",
        help="the network under autocast in bfloat16 (CPU or GPU) or float16 (GPU only)",
    )
    p.add_argument("--batch-size", type=int, default=4, help="sliding windows per network call (default 4)")
    p.add_argument("--no-flip-average", dest="flip_average", action="store_false")
    p.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="i/n")
    p.add_argument("--metrics", type=Path, help="CSV file (default: in --out-dir)")
    return p


def find_file(case: Path, name: str) -> Path:
    for suffix in SUFFIXES:
        if (case / f"{name}{suffix}").is_file():
            return case / f"{name}{suffix}"
    raise FileNotFoundError(f"{case} has no {name} ({'/'.join(SUFFIXES)})")


def list_cases(args: argparse.Namespace) -> list[Path]:
    cases = list(args.cases)
    if args.cases_dir is not None:
        if not args.cases_dir.is_dir():
            raise SystemExit(f"synthesize_batch: --cases-dir {args.cases_dir} is not a folder")
        cases += [path for path in args.cases_dir.iterdir() if path.is_dir()]
    if args.list is not None:
        cases += [Path(line.strip()) for line in args.list.read_text().splitlines() if line.strip()]
    index, count = args.shard
    return sorted(set(cases), key=lambda p: (p.name, str(p)))[index::count]


def checked_settings(args: argparse.Namespace) -> tuple[list[str], dict[str, float]]:
    """The input file names and acquisition parameters, checked against the model once for every case."""
    from mrsynth.acquisition import check_values, parse_assignments
    from mrsynth.inference import InferenceOptions, resolve_device
    from mrsynth.models import load_model

    info = load_model(args.model).info
    parameters = parse_assignments(args.param)
    check_values(info.name, info.parameters, parameters)
    InferenceOptions(batch_size=args.batch_size, precision=args.precision).checked(resolve_device(args.device))
    return list(args.inputs or info.inputs), parameters


def run_case(args: argparse.Namespace, inputs: list[str], parameters: dict[str, float], case: Path) -> list[dict]:
    """Run the worker in this process on one case; rows for the CSV."""
    from MRSynthSlicerLib import worker

    out = args.out_dir / case.name
    out.mkdir(parents=True, exist_ok=True)
    job = {
        "task": args.task,
        "model": args.model,
        "inputs": [str(find_file(case, name).resolve()) for name in inputs],
        "preset": args.preset,
        "options": {"batch_size": args.batch_size, "precision": args.precision}
        | ({"mode": "sliding", "stride": args.stride} if args.stride else {}),
        "device": args.device,
        "flip_average": args.flip_average,
        "output_dir": str((out / "outputs").resolve()),
    }
    if parameters:
        job["parameters"] = parameters
    if args.mask:
        job["mask"] = job["body_mask"] = str(find_file(case, args.mask).resolve())
    if args.reference:
        job["reference"] = str(find_file(case, args.reference).resolve())
    if args.bone_mask:
        job["bone_mask"] = str(find_file(case, args.bone_mask).resolve())
    job_file = out / "job.json"
    job_file.write_text(json.dumps(job, indent=2), encoding="utf-8")
    started = time.time()
    with open(out / "log.txt", "w", encoding="utf-8") as log, contextlib.redirect_stdout(log):
        code = worker.main([str(job_file)])
    seconds = round(time.time() - started, 2)
    if code != 0:
        lines = (out / "log.txt").read_text(encoding="utf-8").splitlines()
        error = next((line[6:] for line in reversed(lines) if line.startswith("ERROR ")), f"exit code {code}")
        return [{"case": case.name, "status": "failed", "seconds": seconds, "error": error}]
    for produced in (out / "outputs").iterdir():
        produced.replace(out / produced.name)
    (out / "outputs").rmdir()
    if not (out / worker.METRICS_FILE).is_file():
        return [{"case": case.name, "status": "ok", "seconds": seconds}]
    metrics = json.loads((out / worker.METRICS_FILE).read_text(encoding="utf-8"))["metrics"]
    return [{"case": case.name, "status": "ok", "region": r, **m, "seconds": seconds} for r, m in metrics.items()]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:  # Slicer passes the arguments after its own '--'
        argv = argv[1:]
    args = parser().parse_intermixed_args(argv)  # case folders may follow the options
    cases = list_cases(args)
    if not cases:
        print("no cases in this shard: nothing to do", file=sys.stderr)
        return 0
    from mrsynth.errors import MRSynthError

    try:
        inputs, parameters = checked_settings(args)
    except MRSynthError as err:
        print(f"synthesize_batch: {err}", file=sys.stderr)
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    index, count = args.shard
    csv_path = args.metrics or args.out_dir / ("metrics.csv" if count == 1 else f"metrics-shard-{index}-of-{count}.csv")
    failed = 0
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for number, case in enumerate(cases, start=1):
            print(f"[{number}/{len(cases)}] {case.name}", flush=True)
            try:
                rows = run_case(args, inputs, parameters, case)
            except FileNotFoundError as err:
                rows = [{"case": case.name, "status": "failed", "error": str(err)}]
            failed += any(row["status"] == "failed" for row in rows)
            for row in rows:
                if row["status"] == "failed":
                    print(f"  failed: {row['error']}", file=sys.stderr)
                writer.writerow(row)
            handle.flush()
    print(f"wrote {csv_path} ({len(cases) - failed} ok, {failed} failed)")
    return 1 if failed else 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    if "slicer" in sys.modules and getattr(sys.modules["slicer"], "app", None) is not None:
        sys.modules["slicer"].util.exit(code)  # --python-script leaves Slicer running otherwise
    else:
        sys.exit(code)
