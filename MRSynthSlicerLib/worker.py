"""The child process of the Slicer modules: read a job folder, run mrsynth, write the outputs.

Run as ``PythonSlicer worker.py JOB.json`` (or any Python with mrsynth). It prints machine-readable
lines for ``runner.ChildRun`` (``STAGE``, ``PROGRESS done total``, ``ERROR message``) and writes all
outputs into a temporary folder that is renamed to the job's output folder only when everything
succeeded, so a failed or cancelled run leaves no outputs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make mrsynth and this package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import SimpleITK as sitk

from mrsynth.errors import MRSynthError

OUTPUT_FILES = {"hr": "hr.nrrd", "lr": "lr.nrrd", "re_map": "re.nrrd", "dssim_map": "dssim.nrrd"}
METRICS_FILE = "metrics.json"


def more_output_file(index: int) -> str:
    """The file of a multi-contrast super-resolution model's output ``index`` (2, 3 ...); the first is hr.nrrd."""
    return f"hr{index}.nrrd"


def emit(kind: str, text: str) -> None:
    print(f"{kind} {text}", flush=True)


def _options(job: dict[str, Any]) -> Any:
    from mrsynth.inference import InferenceOptions

    changes = dict(job.get("options") or {})
    for key in ("stride", "tile"):
        if changes.get(key) is not None:
            changes[key] = tuple(changes[key])
    return InferenceOptions.preset(job.get("preset", "fast"), **changes)


def _evaluate(job: dict[str, Any], folder: Path, hr: sitk.Image, lr: sitk.Image | None, out: Path) -> None:
    from mrsynth.evaluation import evaluate
    from mrsynth.volume_io import read_labels, read_volume, same_grid

    reference = read_volume(folder / job["reference"], "reference")
    if same_grid(hr, reference):
        pred = hr
    elif lr is not None and same_grid(lr, reference):
        pred = lr
    else:
        raise MRSynthError(
            "the reference lies neither on the output volume's grid nor on the sTSE_LR grid: register the inputs "
            "to the reference (Register inputs) or resample it"
        )
    masks = {
        key: read_labels(folder / job[key], key.replace("_", " ")) for key in ("body_mask", "bone_mask") if job.get(key)
    }
    body = masks.get("body_mask")
    if body is not None and not same_grid(body, reference):
        # e.g. a thick-slice reference: the mask given for normalisation lies on the inputs' grid
        print("note: the body mask is not on the reference's grid; the metrics use the reference's Otsu mask")
        masks.pop("body_mask")
    emit("STAGE", "evaluating")
    evaluation = evaluate(pred, reference, masks.get("body_mask"), masks.get("bone_mask"))
    sitk.WriteImage(evaluation.re_map, str(out / OUTPUT_FILES["re_map"]), useCompression=True)
    sitk.WriteImage(evaluation.dssim_map, str(out / OUTPUT_FILES["dssim_map"]), useCompression=True)
    (out / METRICS_FILE).write_text(json.dumps(evaluation.to_json(), indent=2) + "\n", encoding="utf-8")


def run(job_file: Path) -> None:
    """Do the job described by ``job_file``; outputs appear in its ``output_dir`` only on success."""
    from mrsynth.models import load_model
    from mrsynth.superres import superresolve
    from mrsynth.synthesis import synthesize
    from mrsynth.volume_io import read_labels, read_volume, to_paper

    job = json.loads(job_file.read_text(encoding="utf-8"))
    folder = job_file.parent
    final = folder / job.get("output_dir", "outputs")
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)

    emit("STAGE", "loading the model")
    model = load_model(job["model"], device="cpu")
    images = [read_volume(folder / name, f"input {i}") for i, name in enumerate(job["inputs"], start=1)]
    mask = read_labels(folder / job["mask"], "mask") if job.get("mask") else None
    common = {
        "options": _options(job),
        "device": job.get("device", "auto"),
        "flip_average": job.get("flip_average", True),
        "progress": lambda done, total: emit("PROGRESS", f"{done} {total}"),
    }
    if job.get("task") == "super-resolution":
        emit("STAGE", "super-resolving")
        body = None if mask is None else to_paper(mask) > 0
        restored = superresolve(
            model,
            images,
            mask=body,
            back_projections=job.get("back_projections", 0),
            match_in_plane=job.get("match_in_plane", True),
            in_plane_flip=job.get("in_plane_flip", False),
            **common,
        )
        (hr, *more), lr = restored.outputs, None
        for i, image in enumerate(more, start=2):  # a multi-contrast model restores every input
            sitk.WriteImage(image, str(partial / more_output_file(i)), useCompression=True)
        summary: dict[str, Any] = {"reports": [r.summary() for r in restored.reports], "unit": "the input's units"}
    else:
        emit("STAGE", "synthesizing")
        result = synthesize(model, images, mask=mask, parameters=job.get("parameters"), **common)
        hr, lr = result.hr, result.lr
        summary = {
            "scales": result.scales,
            "reports": [r.summary() for r in result.reports],
            "unit": result.intensity_unit,
        }
    sitk.WriteImage(hr, str(partial / OUTPUT_FILES["hr"]), useCompression=True)
    if lr is not None:
        sitk.WriteImage(lr, str(partial / OUTPUT_FILES["lr"]), useCompression=True)
    if job.get("reference"):
        _evaluate(job, folder, hr, lr, partial)
    (partial / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    emit("STAGE", "done")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: worker.py JOB.json", file=sys.stderr)
        return 2
    try:
        run(Path(argv[0]))
    except MRSynthError as err:
        emit("ERROR", str(err).replace("\n", " "))
        return 2
    except Exception as err:  # anything else is a bug: keep the traceback in the log for the report
        traceback.print_exc(file=sys.stdout)
        emit("ERROR", f"unexpected {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
