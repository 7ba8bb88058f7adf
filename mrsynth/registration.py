"""Elastix registration (itk-elastix) with the presets of ``resources/elastix``, and transformix.

The presets are plain elastix parameter files, so that SlicerElastix, the elastix command line and
this library run the same registration. ``bspline-mi-rigidity`` is paper 000's (section II.B): a
translation, then a multi-resolution B-spline with Mattes mutual information, regularised by
elastix's TransformRigidityPenalty where the moving image's bone mask says the anatomy is rigid.

Elastix runs in a child process, not in this one, for two reasons: an elastix call cannot be
interrupted in-process (its C++ loop never returns to Python), while a child process can be
terminated at once, which is what cancellation needs; and importing itk costs about 10 s, which a
worker process that stays alive between calls pays only once. Inputs and outputs travel as files in
a temporary folder (elastix needs the rigidity image as a file anyway). Progress is read from the
per-resolution files (``IterationInfo.<stage>.R<level>.txt``) elastix writes as it goes; the
progress callback runs about every 0.2 s and stops the work by raising (e.g. ``Cancelled``), as
elsewhere in the library.
"""

from __future__ import annotations

import atexit
import os
import pickle
import queue
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .errors import MRSynthError
from .masks import check_mask

Progress = Callable[[int, int], None]
ParameterMap = dict[str, list[str]]

PRESETS: dict[str, tuple[str, ...]] = {
    "translation": ("translation.txt",),
    "rigid": ("rigid.txt",),
    "affine": ("affine.txt",),
    "bspline-mi": ("translation.txt", "bspline.txt"),
    "bspline-mi-rigidity": ("translation.txt", "bspline-rigidity.txt"),
}
METRICS = {"mi": "AdvancedMattesMutualInformation", "ncc": "AdvancedNormalizedCorrelation"}
RIGIDITY_METRIC = "TransformRigidityPenalty"
_POLL_S = 0.2
RIGIDITY_VOXEL_MM = 4.0
_INTERPOLATORS = {True: "FinalNearestNeighborInterpolator", False: "FinalBSplineInterpolator"}


def preset_files(preset: str) -> list[Path]:
    """The parameter files of a preset name, or the file itself when ``preset`` is a path."""
    if preset in PRESETS:
        folder = Path(str(resources.files("mrsynth").joinpath("resources", "elastix")))
        files = [folder / name for name in PRESETS[preset]]
    elif preset.endswith(".txt") or os.sep in preset:
        files = [Path(preset)]
    else:
        raise MRSynthError(f"unknown preset {preset!r}: use one of {', '.join(PRESETS)} or an elastix parameter file")
    for path in files:
        if not path.is_file():
            raise MRSynthError(f"elastix parameter file {path} is missing: reinstall mrsynth or check the path")
    return files


def read_parameter_file(path: str | Path) -> ParameterMap:
    """An elastix parameter (or transform parameter) file as {name: [values]}; comments dropped."""
    entries: ParameterMap = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("//", 1)[0].strip()
        match = re.fullmatch(r"\((\w+)\s*(.*)\)", line)
        if match:
            entries[match.group(1)] = shlex.split(match.group(2))
    if not entries:
        raise MRSynthError(f"{path} holds no elastix parameters: give an elastix parameter file")
    return entries


def _format_value(value: str) -> str:
    try:
        float(value)
    except ValueError:
        return f'"{value}"'
    return value


def write_parameter_file(entries: ParameterMap, path: Path) -> None:
    """Write one parameter map in elastix's own text format (numbers bare, strings quoted)."""
    lines = [f"({key} {' '.join(_format_value(v) for v in values)})" for key, values in entries.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class Transform:
    """A chain of elastix transform parameter maps, applied in order (the first is elastix's first stage)."""

    maps: list[ParameterMap]

    def save(self, folder: str | Path, named_as: str | Path | None = None) -> Path:
        """Write ``TransformParameters.<i>.txt`` into a new (or empty) folder, atomically.

        Each file names the previous one as its initial transform (absolute path; ``named_as`` when
        the folder will be renamed), so that ``transformix -tp <folder>/TransformParameters.<last>.txt``
        and SlicerElastix read the chain too.
        """
        folder = Path(folder).absolute()
        final = Path(named_as).absolute() if named_as is not None else folder
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise MRSynthError(f"transform folder {folder} exists and is not empty: give a new folder")
        if not folder.parent.is_dir():
            raise MRSynthError(f"output folder {folder.parent} does not exist: create it first")
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
        try:
            for i, entries in enumerate(self.maps):
                initial = str(final / _name(i - 1)) if i else "NoInitialTransform"
                write_parameter_file({**entries, "InitialTransformParameterFileName": [initial]}, tmp / _name(i))
            os.replace(tmp, folder)  # replaces an empty folder too
        finally:
            if tmp.exists():
                for child in tmp.iterdir():
                    child.unlink()
                tmp.rmdir()
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Transform:
        """Read a folder written by ``save`` (or elastix's ``TransformParameters.<i>.txt`` files)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise MRSynthError(f"transform folder {folder} does not exist: give the folder --transform-out wrote")
        count = 0
        while (folder / _name(count)).is_file():
            count += 1
        if not count:
            raise MRSynthError(f"transform folder {folder} holds no TransformParameters.0.txt: give a transform folder")
        return cls([read_parameter_file(folder / _name(i)) for i in range(count)])


def _name(index: int) -> str:
    return f"TransformParameters.{index}.txt"


# --- the worker process -------------------------------------------------------------------------


def _child_main() -> None:
    """Serve elastix and transformix jobs read from stdin until it closes (runs in the worker process).

    Results go back as pickles on the original stdout; the file descriptor 1 itself is pointed at
    the null device, so that nothing elastix or ITK prints can corrupt the channel.
    """
    channel = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    import itk  # the slow import this process exists to pay once

    jobs = {"elastix": _child_elastix, "transformix": _child_transformix}
    while True:
        try:
            kind, args = pickle.load(sys.stdin.buffer)
        except EOFError:
            return
        try:
            reply = ("ok", jobs[kind](itk, **args))
        except Exception as err:  # reported to the parent, which raises a clear MRSynthError
            reply = ("error", str(err))
        pickle.dump(reply, channel)
        channel.flush()


def _exit_with_parent(parent: int) -> None:
    """End the worker, even in the middle of a job, once the process that started it is gone (e.g. killed)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _parameter_object(itk: Any, maps: Sequence[ParameterMap]) -> Any:
    parameters = itk.ParameterObject.New()
    for entries in maps:
        parameter_map = parameters.GetDefaultParameterMap("translation")
        for key in list(parameter_map.keys()):
            del parameter_map[key]
        for key, values in entries.items():
            parameter_map[key] = list(values)
        parameters.AddParameterMap(parameter_map)
    return parameters


def _child_elastix(
    itk: Any, fixed: str, moving: str, fixed_mask: str | None, moving_mask: str | None, maps: list, folder: str
) -> list[ParameterMap]:
    method = itk.ElastixRegistrationMethod.New(itk.imread(fixed, itk.F), itk.imread(moving, itk.F))
    method.SetParameterObject(_parameter_object(itk, maps))
    if fixed_mask:
        method.SetFixedMask(itk.imread(fixed_mask, itk.UC))
    if moving_mask:
        method.SetMovingMask(itk.imread(moving_mask, itk.UC))
    method.SetOutputDirectory(folder)
    method.SetLogToFile(True)
    method.SetLogToConsole(False)
    method.UpdateLargestPossibleRegion()  # elastix writes result.<last stage>.mha itself when asked to
    result = method.GetTransformParameterObject()
    return [
        {key: list(value) for key, value in dict(result.GetParameterMap(i)).items()}
        for i in range(result.GetNumberOfParameterMaps())
    ]


def _child_transformix(itk: Any, image: str, maps: list, output: str, field: str | None = None) -> None:
    transformix = itk.TransformixFilter.New(itk.imread(image, itk.F))
    transformix.SetTransformParameterObject(_parameter_object(itk, maps))
    transformix.SetLogToConsole(False)
    transformix.SetOutputDirectory(str(Path(output).parent))  # else transformix writes its field into the cwd
    if field:
        transformix.ComputeDeformationFieldOn()
    transformix.UpdateLargestPossibleRegion()
    itk.imwrite(transformix.GetOutput(), output)
    if field:
        itk.imwrite(transformix.GetOutputDeformationField(), field)


class _Worker:
    """The child process that runs elastix; replaced by a fresh one after a cancellation or a crash.

    A plain subprocess (not ``multiprocessing``), so that nothing depends on how the calling
    program's main module is written, and no process holding torch threads is ever forked.
    """

    current: _Worker | None = None

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from mrsynth.registration import _child_main; _child_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        atexit.register(self.process.kill)  # else a job under way would outlive its caller

    def _read(self) -> None:
        try:
            while True:
                self.replies.put(pickle.load(self.process.stdout))
        except (EOFError, OSError, pickle.UnpicklingError):
            self.replies.put(None)

    @classmethod
    def get(cls) -> _Worker:
        if cls.current is None or cls.current.process.poll() is not None:
            cls.current = cls()
        return cls.current

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        if _Worker.current is self:
            _Worker.current = None

    def call(self, kind: str, args: dict, poll: Callable[[], None] | None = None) -> Any:
        """Run one job; ``poll`` runs while waiting, and whatever it raises terminates the job."""
        try:
            pickle.dump((kind, args), self.process.stdin)
            self.process.stdin.flush()
            while True:
                try:
                    reply = self.replies.get(timeout=_POLL_S)
                    break
                except queue.Empty:
                    if poll is not None:
                        poll()
        except BaseException:
            self.stop()
            raise
        if reply is None:
            self.stop()
            raise MRSynthError(f"the {kind} worker process died (exit code {self.process.returncode}): try again")
        status, value = reply
        if status == "error":
            raise _ElastixError(value)
        return value


class _ElastixError(Exception):
    """An exception elastix raised in the worker, as text; the caller says which input it concerns."""


def _elastix_message(text: str, log: Path | None = None) -> str:
    """The informative lines of an elastix exception (or its log), in one line, without ITK's object addresses."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if log is not None and log.is_file():
        lines += [line.strip() for line in log.read_text(errors="replace").splitlines() if "ERROR" in line.upper()]
    lines = [re.sub(r"(Description: )?ITK ERROR: \w+\(0x[0-9a-f]+\): ", "", line) for line in lines]
    useful = [
        line
        for line in lines
        if "see elastix log" not in line.lower()
        and any(word in line.lower() for word in ("error", "too many", "sample", "could not", "unknown"))
    ]
    return "; ".join(dict.fromkeys(useful or lines[-2:]))[:400]


# --- registration ---------------------------------------------------------------------------------


@dataclass
class Registration:
    """The moving image resampled onto the fixed grid (None when not asked for), and the transform."""

    image: sitk.Image | None
    transform: Transform


def _bounds(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    size = np.array(image.GetSize()) - 1
    corners = [
        image.TransformContinuousIndexToPhysicalPoint([float(c) for c in corner])
        for corner in np.stack(np.meshgrid(*[[0, s] for s in size], indexing="ij"), -1).reshape(-1, 3)
    ]
    return np.min(corners, 0), np.max(corners, 0)


def check_overlap(fixed: sitk.Image, moving: sitk.Image, names: tuple[str, str] = ("fixed", "moving")) -> None:
    """Refuse images whose physical extents (bounding boxes) do not overlap: no metric can align them."""
    (flo, fhi), (mlo, mhi) = _bounds(fixed), _bounds(moving)
    overlap = np.minimum(fhi, mhi) - np.maximum(flo, mlo)
    if np.any(overlap <= 0):
        span = lambda lo, hi: "x".join(f"[{a:.0f},{b:.0f}]" for a, b in zip(lo, hi))  # noqa: E731
        raise MRSynthError(
            f"{names[0]} and {names[1]} do not overlap in physical space ({names[0]} spans {span(flo, fhi)} mm, "
            f"{names[1]} {span(mlo, mhi)} mm): check that they are scans of the same session, or fix their origins"
        )


def _stage_count(maps: Sequence[ParameterMap]) -> int:
    return sum(int(entries.get("NumberOfResolutions", ["1"])[0]) for entries in maps)


def _progress_poll(folder: Path, total: int, progress: Progress | None) -> Callable[[], None] | None:
    if progress is None:
        return None

    def poll() -> None:
        started = len(list(folder.glob("IterationInfo.*.R*.txt")))
        progress(max(started - 1, 0), total)

    return poll


def check_registration(
    fixed: sitk.Image,
    moving: sitk.Image,
    preset: str,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
    rigidity_mask: sitk.Image | None = None,
    names: tuple[str, str] = ("fixed image", "moving image"),
) -> list[ParameterMap]:
    """Every check ``register`` makes before elastix runs; returns the preset's parameter maps."""
    maps = [read_parameter_file(path) for path in preset_files(preset)]
    check_overlap(fixed, moving, names)
    rigid = any(RIGIDITY_METRIC in entries.get("Metric", []) for entries in maps)
    if rigid and rigidity_mask is None:
        raise MRSynthError(f"preset {preset} keeps bone rigid and needs a bone mask: give --rigidity-mask")
    if rigidity_mask is not None and not rigid:
        raise MRSynthError(f"preset {preset} has no rigidity penalty: use bspline-mi-rigidity or drop the bone mask")
    for mask, reference, name, binary in (
        (fixed_mask, fixed, "fixed mask", False),
        (moving_mask, moving, "moving mask", False),
        (rigidity_mask, moving, "bone (rigidity) mask", True),
    ):
        if mask is not None:
            check_mask(mask, reference, name, binary)
    return maps


def rigidity_image(bone: sitk.Image, voxel_mm: float = RIGIDITY_VOXEL_MM) -> sitk.Image:
    """The rigidity image elastix reads: the bone mask on a grid of about ``voxel_mm`` voxels.

    Elastix samples it only at the B-spline control points (16 mm apart or more), after dilating it
    by a control-point spacing at every level (the margin round the bone). On the full 1 mm grid
    that dilation took 21 s of a 63 s registration of a 240x240x155 pair; on 4 mm voxels it is
    instant. A coarse voxel is rigid when any bone voxel falls in it, so thin bone is kept.
    """
    factors = [max(1, int(round(voxel_mm / s))) for s in bone.GetSpacing()]
    coarse = sitk.BinShrink(sitk.Cast(bone > 0, sitk.sitkFloat32), factors) > 0
    return sitk.Cast(coarse, sitk.sitkFloat32)


def register(
    fixed: sitk.Image,
    moving: sitk.Image,
    preset: str = "bspline-mi",
    *,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
    rigidity_mask: sitk.Image | None = None,
    metric: str = "mi",
    names: tuple[str, str] = ("fixed image", "moving image"),
    resample: bool = True,
    progress: Progress | None = None,
) -> Registration:
    """Register ``moving`` to ``fixed`` with a preset (or parameter file); the fixed image is never resampled.

    Masks restrict where the metric samples (fixed mask on the fixed grid, moving mask on the moving
    grid). ``rigidity_mask`` is the bone mask on the moving grid (0/1); presets with the
    TransformRigidityPenalty need it. ``metric`` "ncc" replaces mutual information by normalised
    correlation, for mono-modal pairs such as a synthesized image and its acquired contrast.
    ``resample`` False skips resampling the moving image (a third of the time of a B-spline
    registration of a 240x240x155 pair), for callers that apply the transform elsewhere.
    """
    if metric not in METRICS:
        raise MRSynthError(f"unknown metric {metric!r}: use {' or '.join(METRICS)}")
    maps = check_registration(fixed, moving, preset, fixed_mask, moving_mask, rigidity_mask, names)
    masks = {"fixed_mask": fixed_mask, "moving_mask": moving_mask, "rigidity": rigidity_mask}
    with tempfile.TemporaryDirectory(prefix="mrsynth-elastix-") as tmp:
        folder = Path(tmp)
        files: dict[str, str | None] = {"fixed_mask": None, "moving_mask": None}
        sitk.WriteImage(sitk.Cast(fixed, sitk.sitkFloat32), str(folder / "fixed.mha"))
        sitk.WriteImage(sitk.Cast(moving, sitk.sitkFloat32), str(folder / "moving.mha"))
        for key in ("fixed_mask", "moving_mask"):
            if masks[key] is not None:
                files[key] = str(folder / f"{key}.mha")
                sitk.WriteImage(sitk.Cast(masks[key] > 0, sitk.sitkUInt8), files[key])
        for stage, entries in enumerate(maps):
            entries["WriteResultImage"] = ["true" if resample and stage == len(maps) - 1 else "false"]
            if metric != "mi":
                entries["Metric"] = [METRICS[metric] if m == METRICS["mi"] else m for m in entries["Metric"]]
            if RIGIDITY_METRIC in entries.get("Metric", []):
                sitk.WriteImage(rigidity_image(rigidity_mask), str(folder / "rigidity.mha"))
                entries["MovingRigidityImageName"] = [str(folder / "rigidity.mha")]
            entries["ResultImageFormat"] = ["mha"]
        args = {"fixed": str(folder / "fixed.mha"), "moving": str(folder / "moving.mha"), "folder": tmp, "maps": maps}
        args |= {key: files[key] for key in ("fixed_mask", "moving_mask")}
        try:
            result_maps = _Worker.get().call("elastix", args, _progress_poll(folder, _stage_count(maps), progress))
        except _ElastixError as err:
            reason = _elastix_message(str(err), folder / "elastix.log")
            raise MRSynthError(
                f"elastix failed to register {names[1]} to {names[0]} ({reason}): "
                "check that both show the same anatomy and overlap, and that the masks cover it"
            ) from None
        image = None
        if resample:
            image = sitk.ReadImage(str(folder / f"result.{len(maps) - 1}.mha"), sitk.sitkFloat32)
            image.CopyInformation(fixed)
    if progress is not None:
        progress(_stage_count(maps), _stage_count(maps))
    for entries in result_maps:
        entries.pop("MovingRigidityImageName", None)
        entries["InitialTransformParameterFileName"] = ["NoInitialTransform"]
    return Registration(image=image, transform=Transform(result_maps))


def _grid_entries(reference: sitk.Image) -> ParameterMap:
    return {
        "Size": [str(s) for s in reference.GetSize()],
        "Spacing": [repr(float(s)) for s in reference.GetSpacing()],
        "Origin": [repr(float(s)) for s in reference.GetOrigin()],
        # elastix lists the direction matrix column by column, SimpleITK row by row
        "Direction": [repr(float(s)) for s in np.array(reference.GetDirection()).reshape(3, 3).T.ravel()],
        "Index": ["0", "0", "0"],
    }


def apply_transform(
    image: sitk.Image,
    transform: Transform,
    *,
    reference: sitk.Image | None = None,
    order: int = 3,
    default: float = 0.0,
    deformation: bool = False,
) -> sitk.Image | tuple[sitk.Image, sitk.Image]:
    """Resample ``image`` (on the moving grid) through ``transform`` with transformix.

    The output lies on ``reference``'s grid (default: the registration's fixed grid). ``order`` 0
    (nearest neighbour) is for masks and label maps, 3 (cubic B-spline) for images; voxels that map
    outside ``image`` get ``default``. With ``deformation`` the displacement field (mm) comes too.
    """
    maps = [dict(entries) for entries in transform.maps]
    for entries in maps:
        entries["InitialTransformParameterFileName"] = ["NoInitialTransform"]
        entries["FinalBSplineInterpolationOrder"] = [str(order)]
        entries["ResampleInterpolator"] = [_INTERPOLATORS[order == 0]]
        entries["DefaultPixelValue"] = [repr(float(default))]
        entries["ResultImagePixelType"] = ["float"]
        if reference is not None:
            entries.update(_grid_entries(reference))
    with tempfile.TemporaryDirectory(prefix="mrsynth-transformix-") as tmp:
        folder = Path(tmp)
        sitk.WriteImage(sitk.Cast(image, sitk.sitkFloat32), str(folder / "image.mha"))
        args = {"image": str(folder / "image.mha"), "maps": maps, "output": str(folder / "out.mha")}
        if deformation:
            args["field"] = str(folder / "field.mha")
        try:
            _Worker.get().call("transformix", args)
        except _ElastixError as err:
            reason = _elastix_message(str(err))
            raise MRSynthError(f"transformix failed ({reason}): check the transform folder") from None
        out = sitk.ReadImage(str(folder / "out.mha"), sitk.sitkFloat32)
        field = sitk.ReadImage(str(folder / "field.mha")) if deformation else None
    if reference is not None:
        out.CopyInformation(reference)
    if field is None:
        return out
    return out, sitk.Cast(field, sitk.sitkVectorFloat64)


def jacobian_determinant(field: sitk.Image) -> sitk.Image:
    """det(I + grad u) of a displacement field: 1 where the deformation keeps volume (e.g. rigid bone)."""
    return sitk.DisplacementFieldJacobianDeterminant(sitk.Cast(field, sitk.sitkVectorFloat64))


def resolution_count(preset: str) -> int:
    """How many resolution levels a preset runs in all (what progress counts)."""
    return _stage_count([read_parameter_file(path) for path in preset_files(preset)])
