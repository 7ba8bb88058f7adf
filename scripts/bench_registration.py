#!/usr/bin/env python
"""Registration benchmark: known motions applied to real volumes, registered back, errors in mm.

Sections (``--only`` picks some):
  rigid      known rigid motions (up to 5 degrees and 5 mm per axis) on the real co-registered volumes of
             ../shared/data (brats_met_00110, tcga_brats_space DU-7294); each preset registers the moved
             volume back, to the same contrast (mono) and to another contrast (cross, mutual information).
  native     the same patient's native thick-slice series (tcga_du7294_native): T1c (2.5 mm slices) moved by
             known rigid motions and registered to T1 (5 mm slices); the truth is the motion composed with the
             registration of the unmoved pair, so the error measures recovering the motion, not the pair's
             own alignment.
  deform     a known smooth deformation (3 mm, 80 mm wavelength sinusoid; zero inside a bone mask and 4 mm round it)
             recovered by bspline-mi and bspline-mi-rigidity: the error, the Jacobian determinant of the found
             deformation inside the bone, and the wall time; on a real 240x240x155 pair (brats_met_00110, with
             the outer 4 mm of the brain as a pseudo-bone: these volumes are skull-stripped) and on the BrainWeb
             subject that 'mrsynth simulate' makes (its real skull as the bone).
  timing     bspline-mi-rigidity on the real 240x240x155 pair, with and without resampling: wall time, the
             elastix worker's CPU time and the machine's load average (other work on the machine slows it).
  via-model  known rigid motions between the simulated BrainWeb GE echoes and its T1w TSE, registered directly
             (aIP to TSE, mutual information) and through the TSE that gre-to-tse-sim synthesizes from the moved
             echoes (normalised correlation), paper 002.

The target registration error (TRE) is |found(p) - true(p)| over every 3rd voxel (per axis) of the fixed
image's body mask. Times are wall-clock seconds of register(): without resampling the moving image, except
in the deform section, which times the whole job (registration and cubic B-spline resampling). Medians are
printed; a Markdown table goes to --markdown.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from mrsynth.masks import body_mask
from mrsynth.registration import apply_transform, jacobian_determinant, register
from mrsynth.volume_io import from_paper, to_paper

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RIGID_PRESETS = ("translation", "rigid", "affine", "bspline-mi")


def read(path: Path) -> sitk.Image:
    return sitk.ReadImage(str(path), sitk.sitkFloat32)


def points_of(mask: sitk.Image, step: int = 3) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Physical points (N, 3) of every ``step``-th voxel of a mask, and their numpy (k, j, i) indices."""
    array = sitk.GetArrayViewFromImage(mask) > 0
    sub = np.zeros_like(array)
    sub[::step, ::step, ::step] = True
    k, j, i = np.nonzero(array & sub)
    direction = np.array(mask.GetDirection()).reshape(3, 3)
    index = np.stack([i, j, k], 1) * np.array(mask.GetSpacing())
    return np.array(mask.GetOrigin()) + index @ direction.T, (k, j, i)


def affine_points(transform: sitk.Transform, points: np.ndarray) -> np.ndarray:
    return np.array([transform.TransformPoint(tuple(p)) for p in points])


def rigid_motion(rng: np.random.Generator, centre: tuple[float, ...]) -> sitk.Euler3DTransform:
    motion = sitk.Euler3DTransform()
    motion.SetCenter(centre)
    motion.SetRotation(*np.deg2rad(rng.uniform(-5, 5, 3)))
    motion.SetTranslation(tuple(rng.uniform(-5, 5, 3)))
    return motion


def centre_of(image: sitk.Image) -> tuple[float, ...]:
    return image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in image.GetSize()])


def coarse_grid(image: sitk.Image, step: int = 3) -> sitk.Image:
    """The grid of every ``step``-th voxel of ``image``: where ``points_of`` samples the error."""
    grid = sitk.Image([-(-s // step) for s in image.GetSize()], sitk.sitkUInt8)
    grid.SetSpacing([s * step for s in image.GetSpacing()])
    grid.SetOrigin(image.GetOrigin())
    grid.SetDirection(image.GetDirection())
    return grid


def found_points(moving: sitk.Image, result, points: np.ndarray, index: tuple[np.ndarray, ...], fixed: sitk.Image,
                 step: int = 3) -> np.ndarray:  # fmt: skip
    """Where the found transform maps the points: transformix's displacement field on the coarse grid."""
    _, field = apply_transform(moving, result.transform, reference=coarse_grid(fixed, step), order=1, deformation=True)
    return points + sitk.GetArrayFromImage(field)[tuple(i // step for i in index)]


def tre(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.linalg.norm(found - truth, axis=1)


def head_mask_of(image: sitk.Image) -> sitk.Image:
    return from_paper(body_mask(to_paper(image)).astype(np.uint8), image)


def section_rigid(rows: list[dict], motions: int) -> None:
    pairs = [
        ("brats_met_00110", DATA / "brats_met_00110/BraTS-MET-00110-000-t1n.nii.gz",
         DATA / "brats_met_00110/BraTS-MET-00110-000-t2w.nii.gz", "T2w"),
        ("tcga DU-7294", DATA / "tcga_brats_space/TCGA-DU-7294_t1.nii.gz",
         DATA / "tcga_brats_space/TCGA-DU-7294_t2.nii.gz", "T2"),
    ]  # fmt: skip
    for name, fixed_path, other_path, other in pairs:
        fixed, cross = read(fixed_path), read(other_path)
        points, index = points_of(head_mask_of(fixed))
        rng = np.random.default_rng(0)
        for m in range(motions):
            motion = rigid_motion(rng, centre_of(fixed))
            truth = affine_points(motion.GetInverse(), points)
            for kind, source in (("mono", fixed), (f"cross ({other} to T1)", cross)):
                moved = sitk.Resample(source, source, motion, sitk.sitkBSpline, 0.0)
                for preset in RIGID_PRESETS:
                    start = time.perf_counter()
                    result = register(fixed, moved, preset, resample=False)
                    seconds = time.perf_counter() - start
                    errors = tre(found_points(moved, result, points, index, fixed), truth)
                    rows.append(dict(section="rigid", data=name, pair=kind, method=preset, case=m,
                                     tre=float(np.median(errors)), tre95=float(np.percentile(errors, 95)),
                                     seconds=seconds, before=float(np.median(tre(points, truth)))))  # fmt: skip
                    print(f"{name} {kind} motion {m} {preset}: TRE {rows[-1]['tre']:.2f} mm ({seconds:.1f} s)")


def section_native(rows: list[dict], motions: int) -> None:
    folder = DATA / "tcga_du7294_native"
    fixed_path = next(folder.glob("*t1.nii.gz"))
    moving_path = next(folder.glob("*t1c.nii.gz"))
    fixed, moving = read(fixed_path), read(moving_path)
    points, index = points_of(head_mask_of(fixed))
    baseline = register(fixed, moving, "rigid", resample=False)
    base_points = found_points(moving, baseline, points, index, fixed)
    rng = np.random.default_rng(1)
    for m in range(motions):
        motion = rigid_motion(rng, centre_of(moving))
        truth = affine_points(motion.GetInverse(), base_points)
        moved = sitk.Resample(moving, moving, motion, sitk.sitkBSpline, 0.0)
        for preset in ("rigid", "affine"):
            start = time.perf_counter()
            result = register(fixed, moved, preset, resample=False)
            seconds = time.perf_counter() - start
            errors = tre(found_points(moved, result, points, index, fixed), truth)
            rows.append(dict(section="native", data="tcga DU-7294 native", pair="T1c (2.5 mm) to T1 (5 mm)",
                             method=preset, case=m, tre=float(np.median(errors)),
                             tre95=float(np.percentile(errors, 95)), seconds=seconds,
                             before=float(np.median(tre(base_points, truth)))))  # fmt: skip
            print(f"native motion {m} {preset}: TRE {rows[-1]['tre']:.2f} mm ({seconds:.1f} s)")


def smooth_deformation(fixed: sitk.Image, bone: np.ndarray, amplitude: float = 3.0) -> sitk.Image:
    """A fixed-to-moving displacement field (mm): an 80 mm sinusoid, zero in the bone and 4 mm round it.

    Soft tissue moves, bone does not: the field ramps from 0 at 4 mm from the bone to full at 20 mm.
    """
    shape = bone.shape
    k, j, i = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    spacing = np.array(fixed.GetSpacing())
    x, y, z = i * spacing[0], j * spacing[1], k * spacing[2]
    wave = 2 * np.pi / 80.0
    field = amplitude * np.stack(
        [np.sin(wave * y + 0.3), np.sin(wave * z + 1.1), np.sin(wave * x + 2.0)], axis=-1
    )  # components along x, y, z
    margin = ndimage.distance_transform_edt(~bone, sampling=spacing[::-1])
    weight = np.clip((margin - 4.0) / 16.0, 0.0, 1.0)
    image = sitk.GetImageFromArray((field * weight[..., None]).astype(np.float64), isVector=True)
    image.CopyInformation(fixed)
    return image


def warp_by(image: sitk.Image, fixed_to_moving: sitk.Image) -> sitk.Image:
    """The moving image for a known fixed-to-moving field u: moving(p + u(p)) = image(p)."""
    inverse = sitk.InvertDisplacementField(fixed_to_moving, maximumNumberOfIterations=20)
    return sitk.Resample(image, image, sitk.DisplacementFieldTransform(inverse), sitk.sitkBSpline, 0.0)


def deform_case(rows: list[dict], name: str, fixed: sitk.Image, moving_source: sitk.Image, bone: np.ndarray,
                pair: str) -> None:  # fmt: skip
    field = smooth_deformation(fixed, bone)
    moving = warp_by(moving_source, field)
    bone_image = sitk.GetImageFromArray(bone.astype(np.uint8))
    bone_image.CopyInformation(fixed)
    bone_moving = sitk.Cast(warp_by(sitk.Cast(bone_image, sitk.sitkFloat32), field) > 0.5, sitk.sitkUInt8)
    points, index = points_of(head_mask_of(fixed))
    truth = points + sitk.GetArrayFromImage(field)[index]
    for preset in ("bspline-mi", "bspline-mi-rigidity"):
        start = time.perf_counter()
        result = register(fixed, moving, preset, rigidity_mask=bone_moving if "rigidity" in preset else None)
        seconds = time.perf_counter() - start
        _, found_field = apply_transform(moving, result.transform, order=1, deformation=True)
        errors = tre(points + sitk.GetArrayFromImage(found_field)[index], truth)
        jacobian = sitk.GetArrayFromImage(jacobian_determinant(found_field))[bone]
        rows.append(dict(section="deform", data=name, pair=pair, method=preset, case=0,
                         tre=float(np.median(errors)), tre95=float(np.percentile(errors, 95)), seconds=seconds,
                         before=float(np.median(tre(points, truth))),
                         jac_lo=float(np.percentile(jacobian, 1)), jac_hi=float(np.percentile(jacobian, 99)),
                         jac_in=float(np.mean(np.abs(jacobian - 1) <= 0.02)),
                         size="x".join(map(str, fixed.GetSize()))))  # fmt: skip
        print(
            f"{name} {preset}: TRE {rows[-1]['tre']:.2f} mm, det J in bone 1-99% "
            f"[{rows[-1]['jac_lo']:.3f}, {rows[-1]['jac_hi']:.3f}], {seconds:.1f} s"
        )


def simulated_subject(folder: Path) -> Path:
    subject = folder / "brainweb"
    if not (subject / "bone_mask.nii.gz").is_file():
        labels = DATA / "brainweb" / "brainweb_crisp_labels_from_MRiLab.nii.gz"
        cmd = [sys.executable, "-m", "mrsynth", "simulate", str(labels), "--atlas", "brainweb", "--out-dir",
               str(subject), "--seed", "1"]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return subject


def section_deform(rows: list[dict], work: Path) -> None:
    fixed = read(DATA / "brats_met_00110/BraTS-MET-00110-000-t1n.nii.gz")
    brain = sitk.GetArrayFromImage(head_mask_of(fixed)) > 0
    shell = brain & ~ndimage.binary_erosion(brain, iterations=4)
    t2 = read(DATA / "brats_met_00110/BraTS-MET-00110-000-t2w.nii.gz")
    name = "brats_met_00110 (pseudo-bone: outer 4 mm of the brain)"
    deform_case(rows, name, fixed, fixed, shell, "T1 to T1 (mono)")
    deform_case(rows, name, fixed, t2, shell, "T2w to T1 (cross)")
    subject = simulated_subject(work)
    tse = read(subject / "TSE_HR.nii.gz")
    bone = sitk.GetArrayFromImage(read(subject / "bone_mask.nii.gz")) > 0
    deform_case(rows, "BrainWeb simulated (skull)", tse, read(subject / "GE_aIP.nii.gz"), bone, "GE aIP to T1w TSE")


def section_via_model(rows: list[dict], work: Path, motions: int) -> None:
    from mrsynth.models import load_model
    from mrsynth.register_command import register_via_model

    model = load_model("gre-to-tse-sim")
    subject = simulated_subject(work)
    tse = read(subject / "TSE_HR.nii.gz")
    aop, aip = read(subject / "GE_aOP.nii.gz"), read(subject / "GE_aIP.nii.gz")
    points, index = points_of(read(subject / "head_mask.nii.gz"))
    rng = np.random.default_rng(2)
    for m in range(motions):
        motion = rigid_motion(rng, centre_of(tse))
        truth = affine_points(motion.GetInverse(), points)
        moved = [sitk.Resample(echo, echo, motion, sitk.sitkBSpline, 0.0) for echo in (aop, aip)]
        for method in ("direct (MI)", "via gre-to-tse-sim (NCC)"):
            start = time.perf_counter()
            if method.startswith("direct"):
                result = register(tse, moved[1], "rigid", resample=False)
            else:
                result = register_via_model(tse, moved, model, "rigid", device="cpu")
            seconds = time.perf_counter() - start
            errors = tre(found_points(moved[1], result, points, index, tse), truth)
            rows.append(dict(section="via-model", data="BrainWeb simulated", pair="GE (aOP, aIP) to T1w TSE",
                             method=method, case=m, tre=float(np.median(errors)),
                             tre95=float(np.percentile(errors, 95)), seconds=seconds,
                             before=float(np.median(tre(points, truth)))))  # fmt: skip
            print(f"via-model motion {m} {method}: TRE {rows[-1]['tre']:.2f} mm ({seconds:.1f} s)")


def worker_cpu_seconds() -> float:
    """CPU seconds (user + system) the elastix worker process has used so far (Linux /proc)."""
    from mrsynth.registration import _Worker

    fields = Path(f"/proc/{_Worker.get().process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def section_timing(repeats: int) -> None:
    """bspline-mi-rigidity on the real 240x240x155 pair: wall time, the worker's CPU time, the machine's load."""
    fixed = read(DATA / "brats_met_00110/BraTS-MET-00110-000-t1n.nii.gz")
    brain = sitk.GetArrayFromImage(head_mask_of(fixed)) > 0
    shell = sitk.GetImageFromArray((brain & ~ndimage.binary_erosion(brain, iterations=4)).astype(np.uint8))
    shell.CopyInformation(fixed)
    field = smooth_deformation(fixed, sitk.GetArrayFromImage(shell) > 0)
    moving = warp_by(read(DATA / "brats_met_00110/BraTS-MET-00110-000-t2w.nii.gz"), field)
    bone = sitk.Cast(warp_by(sitk.Cast(shell, sitk.sitkFloat32), field) > 0.5, sitk.sitkUInt8)
    register(fixed, moving, "translation", resample=False)  # start the worker (the itk import, ~10 s)
    for resample in (False, True):
        walls, cpus = [], []
        for _ in range(repeats):
            cpu, start = worker_cpu_seconds(), time.perf_counter()
            register(fixed, moving, "bspline-mi-rigidity", rigidity_mask=bone, resample=resample)
            walls.append(time.perf_counter() - start)
            cpus.append(worker_cpu_seconds() - cpu)
        print(
            f"timing bspline-mi-rigidity {'with' if resample else 'without'} resampling, {fixed.GetSize()}: "
            f"median wall {np.median(walls):.1f} s, worker CPU {np.median(cpus):.1f} s, "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )


def summary(rows: list[dict]) -> str:
    """Medians over the motions of each section, data set, pair and method, as a Markdown table."""
    lines = []
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["section"], row["data"], row["pair"], row["method"]), []).append(row)
    lines.append("| section | data | pair | method | n | TRE before (mm) | TRE median (mm) | TRE p95 (mm) | time (s) |"
                 " det J in bone, 1-99 % | share of bone with abs(det J - 1) <= 0.02 |")  # fmt: skip
    lines.append("|" + "---|" * 11)
    for (section, data, pair, method), group in groups.items():

        def med(key: str, group: list[dict] = group) -> float:
            return float(np.median([r[key] for r in group]))

        jac = f"{med('jac_lo'):.3f} .. {med('jac_hi'):.3f}" if "jac_lo" in group[0] else ""
        share = f"{med('jac_in'):.1%}" if "jac_in" in group[0] else ""
        lines.append(
            f"| {section} | {data} | {pair} | {method} | {len(group)} | {med('before'):.2f} | {med('tre'):.2f} | "
            f"{med('tre95'):.2f} | {med('seconds'):.1f} | {jac} | {share} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=("rigid", "native", "deform", "via-model", "timing"))
    parser.add_argument("--motions", type=int, default=3, help="known motions per data set (default: %(default)s)")
    parser.add_argument("--markdown", type=Path, help="also write the summary table here")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"the real data folder {DATA} is absent")
    sections = args.only or ["rigid", "native", "deform", "via-model", "timing"]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-registration-") as tmp:
        if "rigid" in sections:
            section_rigid(rows, args.motions)
        if "native" in sections:
            section_native(rows, args.motions)
        if "deform" in sections:
            section_deform(rows, Path(tmp))
        if "via-model" in sections:
            section_via_model(rows, Path(tmp), max(args.motions, 4))
        if "timing" in sections:
            section_timing(args.motions)
    table = summary(rows)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
