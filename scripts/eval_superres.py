"""Evaluate a super-resolution model against tricubic, Fourier and sparse-coding SR (paper 003, Tables 1-2).

Table 1: thin (1 mm) volumes are made thick (x factor) by the training forward model along each
axis, brought back by every method, and scored against the original inside the head (SSIM with a
7x7x7 window, pSNR, RMSE; images divided by the original's 99th percentile in the mask).
Table 2: noise-free DESS echoes are simulated from held-out label maps, made thick along LR,
brought back by every method (a two-echo model restores both together), and T2 (Sveinsson et
al.) is compared per tissue region with the thin echoes' T2. Real thick-slice series (no truth)
get orthogonal-reformat figures.

    python scripts/eval_superres.py --model runs/superres-x4-sim/model.pt --out runs/sr_eval \
        --sim runs/sim/seg_15 runs/sim/brainweb --axes LR --dess \
        [--dess-model runs/superres-x4-dess-sim/model.pt] [--dess-cases 13 --dess-axes SI AP LR] \
        --real ../shared/data/brats_met_00110/BraTS-MET-00110-000-t1n.nii.gz [--native] [--scsr-train DIR ...]
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from itertools import product
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

from mrsynth.checkpoint import load_checkpoint
from mrsynth.dess import cv_percent, estimate_t2, lins_ccc, region_t2, simulate_dess
from mrsynth.masks import normalise_p99
from mrsynth.metrics import psnr, rmse, ssim
from mrsynth.significance import paired_t_test
from mrsynth.simulate import load_spec, tissue_names
from mrsynth.sr_baselines import ScSR, fourier, tricubic
from mrsynth.superres import superresolve_arrays
from mrsynth.thick_slices import AXIS_NAMES, back_project, make_thick
from mrsynth.volume_io import read_labels, read_volume, to_paper

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
WINDOW = (7, 7, 7)
REGIONS = ["csf", "gm", "wm"]
# distance bands (mm) from the CSF boundary for the breakdown of Table 2: partial volume with CSF, whose
# T2 is four times grey matter's, moves a tissue's T2 most there, and CSF's own T2, far above the
# DESS repetition time, turns a small echo-ratio error into a large T2 error
CSF_BANDS = ((0.0, 1.5), (1.5, 3.0), (3.0, float("inf")))
INTERPOLATIONS = ("TCI", "FI")


def crop_box(mask: np.ndarray, margin: int = 4) -> tuple[slice, ...]:
    where = np.argwhere(mask)
    lo, hi = np.maximum(where.min(0) - margin, 0), np.minimum(where.max(0) + 1 + margin, mask.shape)
    return tuple(slice(a, b) for a, b in zip(lo, hi))


def methods(
    model, truth: np.ndarray, mask: np.ndarray, axis: int, factor: int, scsr: ScSR | None, back_projections: int = 0
) -> dict:
    """Every method's thin volume from the thick version of ``truth`` along ``axis`` (``MRSR+BP``: back-projected)."""
    n = truth.shape[axis]
    thick = make_thick(truth, axis, factor)
    thick_mask = make_thick(mask.astype(np.float32), axis, factor) > 0.5
    keep = [slice(None)] * 3
    keep[axis] = slice(0, n)
    out = {"TCI": tricubic(thick, axis, factor, n), "FI": fourier(thick, axis, factor, n)}
    sr, _, _ = superresolve_arrays(model, [thick], axis, mask=thick_mask)
    out["MRSR"] = sr[0][tuple(keep)]
    if back_projections:
        out["MRSR+BP"] = back_project(sr[0], thick, axis, factor, back_projections)[tuple(keep)]
    if scsr is not None:  # the dictionary was learned with the slice axis last
        low = np.moveaxis(out["TCI"], axis, 2)
        out["ScSR"] = np.moveaxis(scsr.predict(low, np.moveaxis(mask, axis, 2), stride=3), 2, axis)
    return out


def score(truth: np.ndarray, mask: np.ndarray, outs: dict) -> dict:
    return {
        name: {"SSIM": ssim(v, truth, mask, WINDOW), "pSNR": psnr(v, truth, mask), "RMSE": rmse(v, truth, mask)}
        for name, v in outs.items()
    }


def fit_scsr(folders: list[str], factor: int) -> ScSR:
    volumes, masks = [], []
    for i, folder in enumerate(folders):
        mask = to_paper(read_volume(Path(folder) / "head_mask.nii.gz", check=False)) > 0
        for j, contrast in enumerate(("TSE_HR", "TSE_T2_HR")):
            volume = normalise_p99(to_paper(read_volume(Path(folder) / f"{contrast}.nii.gz")), mask)[0]
            axis = (i + j) % 3  # every slice axis seen, moved last
            volumes.append(np.moveaxis(volume, axis, 2))
            masks.append(np.moveaxis(mask, axis, 2))
    return ScSR(factor=factor, axis=2, atoms=128, samples=12000, nonzero=3, epochs=5).fit(volumes, masks)


def table1(
    model,
    cases: list[tuple[str, np.ndarray, np.ndarray]],
    axes: list[int],
    scsr,
    factor: int,
    back_projections: int = 0,
) -> list[dict]:
    rows = []
    for name, volume, mask in cases:
        box = crop_box(mask)
        volume, mask = volume[box], mask[box]
        truth = normalise_p99(volume, mask)[0]
        for axis in axes:
            started = time.time()
            scores = score(truth, mask, methods(model, truth, mask, axis, factor, scsr, back_projections))
            rows.append({"volume": name, "axis": AXIS_NAMES[axis], "scores": scores})
            print(name, AXIS_NAMES[axis], {m: round(s["pSNR"], 2) for m, s in scores.items()},
                  f"{time.time() - started:.0f} s", flush=True)  # fmt: skip
    return rows


def sim_cases(folders: list[str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    cases = []
    for folder in folders:
        mask = to_paper(read_volume(Path(folder) / "head_mask.nii.gz", check=False)) > 0
        for contrast in ("TSE_HR", "TSE_T2_HR"):
            cases.append(
                (f"{Path(folder).name}/{contrast}", to_paper(read_volume(Path(folder) / f"{contrast}.nii.gz")), mask)
            )
    return cases


def real_cases(files: list[str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Real 1 mm volumes (skull-stripped: the head mask is the filled nonzero region)."""
    cases = []
    for path in files:
        volume = to_paper(read_volume(path))
        mask = ndimage.binary_fill_holes(volume > 0)
        cases.append((Path(path).name.replace(".nii.gz", ""), np.clip(volume, 0, None), mask))
    return cases


def dess_labels(cases: list[str]) -> list[tuple[str, str]]:
    """Label maps for Table 2: ``brainweb`` is the phantom, a number a SynthSeg subject."""
    return [
        (str(SHARED / "brainweb" / "brainweb_crisp_labels_from_MRiLab.nii.gz"), "brainweb")
        if case == "brainweb"
        else (str(SHARED / "synthseg_labels" / f"training_seg_{int(case):02d}.nii.gz"), "synthseg")
        for case in cases
    ]


def dess_figure(t2: dict, path: Path, title: str) -> str:
    """T2 maps of one subject on an axial cut (LR runs across) and their error."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    cut = t2["GT"].shape[0] // 2
    fig = Figure(figsize=(3 * len(t2), 6))
    for col, (name, volume) in enumerate(t2.items()):
        for row, (image, cmap, limits) in enumerate(
            ((volume[cut], "magma", (0, 350)), (volume[cut] - t2["GT"][cut], "coolwarm", (-100, 100)))
        ):
            if row and name == "GT":
                continue
            ax = fig.add_subplot(2, len(t2), row * len(t2) + col + 1)
            shown = ax.imshow(np.nan_to_num(image), cmap=cmap, vmin=limits[0], vmax=limits[1], origin="lower")
            ax.set_title(f"{name}: {'T2 (ms)' if row == 0 else 'minus GT (ms)'}", fontsize=9)
            ax.axis("off")
            fig.colorbar(shown, ax=ax, fraction=0.04)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    return str(path)


def agreement(rows: list[dict], methods: tuple[str, ...]) -> dict:
    """Table 2's last rows: per method, CV % and absolute difference against GT (mean, SD) and Lin's CCC."""
    gt = np.array([r["GT"] for r in rows])
    summary = {"GT": {"mean": float(gt.mean()), "sd": float(gt.std(ddof=1))}}
    for method in methods:
        values = np.array([r[method] for r in rows])
        cv, diff = cv_percent(gt, values), np.abs(values - gt)
        summary[method] = {
            "mean": float(values.mean()), "sd": float(values.std(ddof=1)),
            "cv_mean": float(cv.mean()), "cv_sd": float(cv.std(ddof=1)),
            "diff_mean": float(diff.mean()), "diff_sd": float(diff.std(ddof=1)), "ccc": lins_ccc(gt, values),
        }  # fmt: skip
    return summary


def paired_tests(rows: list[dict], pairwise: dict[str, list[dict]], methods: tuple[str, ...]) -> dict:
    """Is each super-resolved method's T2 closer to the truth than each interpolation's, beyond chance?

    A paired t-test (``significance.paired_t_test``) of the absolute differences from the truth,
    row by row (subject, thick axis, region): over each method's own voxels (``rows``) and over the
    voxels the two share (``pairwise``). ``mean_difference`` < 0: the method is closer. Table 2's
    means alone do not say whether a margin of tenths of a millisecond over a few subjects is one.
    Rows where either has no T2 (a region without valid voxels) are left out; under two rows, no test.
    """

    def test(table: list[dict], method: str, baseline: str) -> dict | None:
        truth = np.array([r["GT"] for r in table])
        error = {m: np.abs(np.array([r[m] for r in table]) - truth) for m in (method, baseline)}
        kept = np.isfinite(error[method]) & np.isfinite(error[baseline])
        if kept.sum() < 2:
            return None
        result = paired_t_test(error[method][kept], error[baseline][kept])
        return {"mean_difference": result.mean_difference, "p_value": result.p_value, "pairs": result.pairs}

    tests: dict = {"own": {}, "pairwise": {}}
    for method, baseline in product([m for m in methods if m not in INTERPOLATIONS], INTERPOLATIONS):
        name = f"{method} vs {baseline}"
        tests["own"][name] = test(rows, method, baseline)
        if name in pairwise:
            tests["pairwise"][name] = test(pairwise[name], method, baseline)
    return tests


def csf_bands(
    t2: dict, tissues: np.ndarray, spec: dict, core: np.ndarray, distance: np.ndarray, where: dict
) -> list[dict]:
    """Per tissue region, T2 by distance (mm) from the CSF boundary (``CSF_BANDS``): for grey and white
    matter the distance from CSF, for CSF its depth. ``distance`` holds both (``csf_boundary_distance``).
    Per band: the voxel count, the truth's mean over them, and per method its mean, the truth's mean
    over the voxels where the method gives a T2 (``NAME truth``) and that fraction (``NAME kept``)."""
    names = tissue_names(spec)
    out = []
    for region, (low, high) in product(REGIONS, CSF_BANDS):
        band = core & (tissues == names.index(region)) & (distance > low) & (distance <= high)
        band &= np.isfinite(t2["GT"])
        row = {**where, "region": region, "csf_boundary_mm": [low, high], "voxels": int(band.sum())}
        for method, values in t2.items():
            kept = band & np.isfinite(values)
            row[method] = float(values[kept].mean()) if kept.any() else float("nan")
            if method != "GT":
                row[f"{method} truth"] = float(t2["GT"][kept].mean()) if kept.any() else float("nan")
                row[f"{method} kept"] = float(kept.sum() / band.sum()) if band.any() else float("nan")
        out.append(row)
    return out


def csf_boundary_distance(tissues: np.ndarray, spec: dict) -> np.ndarray:
    """Per voxel, the distance (mm, 1 mm grid) to the CSF boundary: from CSF outside it, its depth inside."""
    csf = tissues == tissue_names(spec).index("csf")
    return np.where(csf, ndimage.distance_transform_edt(csf), ndimage.distance_transform_edt(~csf))


def dess_table(
    models: dict,
    factor: int,
    labels: list[tuple[str, str]],
    out: Path,
    axes: tuple[int, ...] = (2,),
    back_projections: int = 0,
    in_plane_flip: bool = False,
    mean: bool = False,
) -> dict:
    """Table 2: per subject, thick axis and region, mean T2 of GT, each model, TCI and FI; CV%, difference, CCC.

    A model with two inputs (``mrsynth transfer``, fine-tuned on DESS) restores both echoes together;
    a single-contrast one restores each echo alone. Region means are taken three ways: over each method's
    own valid T2 voxels (``rows``), over the voxels where the truth and every method give a T2
    (``rows_common``), so that no method's mean gains or loses voxels the others left out, and, for
    each super-resolved method against each interpolation, over the voxels where the truth and those
    two give a T2 (``rows_pairwise``), so that a third method's failures do not choose the voxels of
    a comparison between two. ``rows_boundary`` breaks each region down by distance from the CSF boundary
    (``csf_bands``); ``summary_by_axis`` repeats the own-voxel and pairwise summaries for each thick
    axis alone. Each echo's pSNR inside the head is kept too, and the first subject's
    T2 maps are drawn (first axis). The paper's DESS was thick along one axis; more ``axes`` (paper
    order: 0 SI, 1 AP, 2 LR) give more rows.
    ``back_projections`` > 0 adds each model's echoes after that many passes of
    ``thick_slices.back_project`` as the method ``NAME+BP``. ``in_plane_flip`` averages the models'
    passes over the in-plane mirror too (``superres.superresolve_arrays``). ``mean`` adds the mean of the
    models' echoes as the method ``MEAN`` (and ``MEAN+BP``): models that err in opposite directions in
    T2 (``MRSR`` per echo and ``MRSR-DESS``) may average out.
    """
    spec = load_spec()
    rows, common, quality, boundary = [], [], [], []
    pairwise: dict[str, list[dict]] = {}
    figure = None
    for path, atlas in labels:
        array = to_paper(read_labels(path)).astype(np.int64)
        array = array[crop_box(array > 0)]
        dess = simulate_dess(array, atlas, spec)
        head = ndimage.binary_fill_holes(array > 0)
        core = ndimage.binary_erosion(head, iterations=2)
        subject = Path(path).name.split(".")[0]
        t2_truth = estimate_t2(dess["S1"], dess["S2"], dess["T1"])
        csf_distance = csf_boundary_distance(dess["tissues"], spec)
        for axis in axes:
            n = array.shape[axis]
            keep = tuple(slice(0, n) if a == axis else slice(None) for a in range(3))
            thick = [make_thick(dess[echo], axis, factor) for echo in ("S1", "S2")]
            thick_mask = make_thick(head.astype(np.float32), axis, factor) > 0.5
            echoes, restored = {}, {}
            for name, model in models.items():
                result = superresolve_arrays(model, thick, axis, mask=thick_mask, in_plane_flip=in_plane_flip)
                restored[name] = result[0]
            if mean:
                restored["MEAN"] = [np.mean(each, axis=0) for each in zip(*restored.values())]
            for name, volumes in restored.items():
                echoes[name] = [e[keep] for e in volumes]
                if back_projections:
                    echoes[f"{name}+BP"] = [back_project(e, t, axis, factor, back_projections)[keep]
                                            for e, t in zip(volumes, thick)]  # fmt: skip
            echoes["TCI"] = [tricubic(t, axis, factor, n) for t in thick]
            echoes["FI"] = [fourier(t, axis, factor, n) for t in thick]
            t2 = {"GT": t2_truth}
            t2.update({method: estimate_t2(s1, s2, dess["T1"]) for method, (s1, s2) in echoes.items()})
            means = {m: region_t2(v, dess["tissues"], spec, REGIONS, core) for m, v in t2.items()}
            # the same voxels for every method: those where the truth and every method give a T2
            shared = core & np.all([np.isfinite(v) for v in t2.values()], axis=0)
            shared_means = {m: region_t2(v, dess["tissues"], spec, REGIONS, shared) for m, v in t2.items()}
            where = {"subject": subject, "axis": AXIS_NAMES[axis]}
            for region in REGIONS:
                rows.append({**where, "region": region, **{m: means[m][region] for m in means}})
                common.append({**where, "region": region, **{m: shared_means[m][region] for m in means}})
            for method, baseline in product([m for m in echoes if m not in INTERPOLATIONS], INTERPOLATIONS):
                both = core & np.isfinite(t2["GT"]) & np.isfinite(t2[method]) & np.isfinite(t2[baseline])
                pair = {m: region_t2(t2[m], dess["tissues"], spec, REGIONS, both) for m in ("GT", method, baseline)}
                pairwise.setdefault(f"{method} vs {baseline}", []).extend(
                    {**where, "region": region, **{m: pair[m][region] for m in pair}} for region in REGIONS
                )
            boundary.extend(csf_bands(t2, dess["tissues"], spec, core, csf_distance, where))
            quality.append({**where, **{m: {e: psnr(v, dess[e], head) for e, v in zip(("S1", "S2"), pair)}
                                        for m, pair in echoes.items()}})  # fmt: skip
            print(path, AXIS_NAMES[axis], {m: {r: round(v, 1) for r, v in means[m].items()} for m in means},
                  quality[-1], flush=True)  # fmt: skip
            if figure is None:
                title = f"{subject}: DESS T2, echoes thick x{factor} along {AXIS_NAMES[axis]}"
                figure = dess_figure(t2, out / "dess_t2.png", title)
    names = (*models, "MEAN") if mean else tuple(models)
    methods = (*names, *(f"{m}+BP" for m in names if back_projections), *INTERPOLATIONS)
    summary_pairwise = {name: agreement(pair, tuple(name.split(" vs "))) for name, pair in pairwise.items()}
    by_axis = {}  # each thick axis alone: its own-voxel summary, each pair's, and the paired tests
    for axis_name in (AXIS_NAMES[a] for a in axes):
        on_axis = [r for r in rows if r["axis"] == axis_name]
        pairs_on_axis = {name: [r for r in pair if r["axis"] == axis_name] for name, pair in pairwise.items()}
        by_axis[axis_name] = (
            {"summary": agreement(on_axis, methods)}
            | {name: agreement(pair, tuple(name.split(" vs "))) for name, pair in pairs_on_axis.items()}
            | {"paired_tests": paired_tests(on_axis, pairs_on_axis, methods)}
        )
    return {"rows": rows, "summary": agreement(rows, methods), "summary_by_axis": by_axis, "rows_common": common,
            "paired_tests": paired_tests(rows, pairwise, methods),
            "summary_common": agreement(common, methods), "rows_pairwise": pairwise,
            "summary_pairwise": summary_pairwise, "rows_boundary": boundary, "echo_psnr": quality, "figure": figure,
            "slice_axes": [AXIS_NAMES[a] for a in axes], "factor": factor}  # fmt: skip


def native_figure(model, out: Path) -> list[dict]:
    """Real thick-slice series: cubic vs MRSR reformats (no ground truth exists)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from mrsynth.superres import superresolve

    found = []
    for name in ("t1", "t2", "fla"):
        paths = sorted(glob.glob(str(SHARED / "tcga_du7294_native" / f"*{name}*.nii.gz")))
        if not paths:
            continue
        image = read_volume(paths[0])
        started = time.time()
        result = superresolve(model, [image])
        seconds = time.time() - started
        sr, tci = to_paper(result.outputs[0]), to_paper(result.interpolated[0])
        axis = result.slice_axis
        fig = Figure(figsize=(10, 5.2))
        centre = [s // 2 for s in sr.shape]
        other = [a for a in range(3) if a != axis]
        for col, (label, vol) in enumerate((("cubic (TCI)", tci), ("MRSR", sr))):
            for row, cut in enumerate(other):
                ax = fig.add_subplot(2, 2, 2 * row + col + 1)
                plane = np.take(vol, centre[cut], axis=cut)
                spacing = np.delete(np.array(sitk_spacing(result.outputs[0])), cut)
                ax.imshow(plane, cmap="gray", vmin=0, vmax=np.percentile(tci, 99.5),
                          aspect=spacing[0] / spacing[1], origin="lower")  # fmt: skip
                ax.set_title(f"{label}: {AXIS_NAMES[cut]} cut", fontsize=9)
                ax.axis("off")
        fig.suptitle(f"TCGA-DU-7294 {name} ({Path(paths[0]).name}), thick along {AXIS_NAMES[axis]}; TCIA CC BY 3.0")
        fig.tight_layout()
        path = out / f"native_{name}.png"
        fig.savefig(path, dpi=80)
        found.append({"series": Path(paths[0]).name, "slice_axis": AXIS_NAMES[axis], "seconds": seconds,
                      "figure": str(path), "thin_size": list(sr.shape)})  # fmt: skip
    return found


def sitk_spacing(image: sitk.Image) -> tuple[float, float, float]:
    from mrsynth.volume_io import paper_spacing

    return paper_spacing(image)


def sim_figure(model, folder: str, out: Path, factor: int) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    mask = to_paper(read_volume(Path(folder) / "head_mask.nii.gz", check=False)) > 0
    truth = normalise_p99(to_paper(read_volume(Path(folder) / "TSE_T2_HR.nii.gz")), mask)[0]
    outs = methods(model, truth, mask, 0, factor, None)
    fig = Figure(figsize=(12, 3.6))
    centre = truth.shape[2] // 2
    for i, (label, vol) in enumerate(
        (("truth (1 mm)", truth), ("TCI", outs["TCI"]), ("FI", outs["FI"]), ("MRSR", outs["MRSR"]))
    ):
        ax = fig.add_subplot(1, 4, i + 1)
        ax.imshow(vol[:, :, centre], cmap="gray", vmin=0, vmax=1.2, origin="lower")
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{Path(folder).name} T2w TSE, thick x{factor} along SI, sagittal cut (held out)")
    fig.tight_layout()
    path = out / "sim_sagittal.png"
    fig.savefig(path, dpi=80)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--sim", nargs="*", default=[])
    parser.add_argument("--axes", nargs="+", default=["SI", "AP", "LR"])
    parser.add_argument("--real", nargs="*", default=[], help="real 1 mm volumes (paths under ../shared/data)")
    parser.add_argument("--dess", action="store_true", help="Table 2 (T2 from DESS echoes) with --model per echo")
    parser.add_argument("--dess-model", help="a two-echo model (DESS_S1, DESS_S2) for Table 2 too, as MRSR-DESS")
    parser.add_argument("--dess-cases", nargs="+", default=["14", "15", "brainweb"],
                        help="Table 2 subjects: SynthSeg numbers and/or brainweb (default: the held-out 14 15 "
                        "brainweb; 13 is the DESS model's validation subject)")  # fmt: skip
    parser.add_argument("--dess-axes", nargs="+", default=["LR"], choices=AXIS_NAMES, help="Table 2 thick axes")
    parser.add_argument(
        "--back-project",
        type=int,
        default=0,
        metavar="N",
        help="also score each model's output after N back-projection passes (MRSR+BP, Table 2: NAME+BP)",
    )
    parser.add_argument("--native", action="store_true")
    parser.add_argument("--scsr-train", nargs="*", default=[])
    parser.add_argument("--in-plane-flip", action="store_true", help="Table 2: average in-plane mirrored passes too")
    parser.add_argument(
        "--dess-mean",
        action="store_true",
        help="Table 2: also the mean of --model's (per echo) and --dess-model's echoes",
    )
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.dess_mean and not (args.dess and args.dess_model):
        parser.error("--dess-mean averages --model's echoes with --dess-model's: give --dess and --dess-model too")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_checkpoint(args.model)
    factor = int(model.info.slice_factor)
    axes = [AXIS_NAMES.index(a) for a in args.axes]
    report: dict = {"model": args.model, "factor": factor, "ssim_window": WINDOW}
    scsr = None
    if args.scsr_train:
        started = time.time()
        scsr = fit_scsr(args.scsr_train, factor)
        report["scsr"] = {"train": args.scsr_train, "seconds": time.time() - started}
    if args.sim:
        report["sim"] = table1(model, sim_cases(args.sim), axes, scsr, factor, args.back_project)
        report["sim_figure"] = sim_figure(model, args.sim[0], out, factor)
    if args.real:
        report["real"] = table1(model, real_cases(args.real), axes, scsr, factor, args.back_project)
    if args.dess:
        models = {"MRSR": model}
        if args.dess_model:
            models["MRSR-DESS"] = load_checkpoint(args.dess_model)
        dess_axes = tuple(AXIS_NAMES.index(a) for a in args.dess_axes)
        cases = dess_labels(args.dess_cases)
        report["dess"] = dess_table(
            models, factor, cases, out, dess_axes, args.back_project, args.in_plane_flip, args.dess_mean
        )
        report["dess"]["in_plane_flip"] = args.in_plane_flip
    if args.native:
        report["native"] = native_figure(model, out)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(f"wrote {out / 'report.json'}")


if __name__ == "__main__":
    main()
