"""Volume I/O that keeps geometry, and the anatomical axis convention of the papers.

Every array the library computes on is in *paper order*: axis 0 superior-inferior (SI), axis 1
anterior-posterior (AP), axis 2 left-right (LR). Which image index axis is which is read from the
direction cosines, never assumed from the index order, so sagittal, axial and oblique acquisitions
are all handled the same way.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import MRSynthError
from .files import atomic_path

AXIS_NAMES = ("SI", "AP", "LR")


def read_volume(path: str | Path, name: str = "input", check: bool = True) -> sitk.Image:
    """Read a 3D scalar volume (any format SimpleITK reads, or a DICOM series folder) as float32."""
    path = Path(path)
    if not path.exists():
        raise MRSynthError(f"{name} {path} does not exist: check the path")
    try:
        if path.is_dir():
            image = _read_dicom_folder(path, name)
        else:
            image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown reason"
        raise MRSynthError(
            f"{name} {path} could not be read ({first}): give a NIfTI, NRRD, MHA file or a DICOM series folder"
        ) from None
    if check:
        check_volume(image, f"{name} {path}")
    if image.GetNumberOfComponentsPerPixel() == 1 and image.GetPixelID() != sitk.sitkFloat32:
        image = sitk.Cast(image, sitk.sitkFloat32)
    return image


def read_labels(path: str | Path, name: str = "label map") -> sitk.Image:
    """Read a 3D label map, keeping integer labels."""
    image = read_volume(path, name, check=False)
    _check_dimension(image, f"{name} {path}")
    return image


def _read_dicom_folder(path: Path, name: str) -> sitk.Image:
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
    if not series:
        raise MRSynthError(f"{name} {path} is a folder without a DICOM series: give a file or a DICOM folder")
    if len(series) > 1:
        raise MRSynthError(
            f"{name} {path} holds {len(series)} DICOM series ({', '.join(series)}): "
            "put the series you want in a folder of its own"
        )
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), series[0]))
    return reader.Execute()


def _check_dimension(image: sitk.Image, what: str) -> None:
    dim = image.GetDimension()
    size = image.GetSize()
    if dim == 2 or (dim == 3 and min(size) == 1):
        raise MRSynthError(f"{what} is a 2D image (size {size}): give a 3D volume")
    if dim != 3:
        raise MRSynthError(f"{what} is a {dim}D image (size {size}): give a single 3D volume (split 4D series first)")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise MRSynthError(
            f"{what} has {image.GetNumberOfComponentsPerPixel()} components per voxel: give a scalar volume"
        )


def check_volume(image: sitk.Image, what: str = "input") -> None:
    """Reject what no model can use: not 3D, not scalar, NaN/Inf voxels, or all zero."""
    _check_dimension(image, what)
    array = sitk.GetArrayViewFromImage(image)
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise MRSynthError(f"{what} has {bad} NaN or Inf voxels: replace them (e.g. by 0) before synthesis")
    if not np.any(array):
        raise MRSynthError(f"{what} is all zero: check that the right file was given")


def write_volume(image: sitk.Image, path: str | Path) -> Path:
    """Write atomically (temporary file, then rename), compressing where the format allows."""
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
    return Path(path)


def paper_axes(image: sitk.Image) -> tuple[int, int, int]:
    """The numpy-array axes (of ``sitk.GetArrayFromImage``) that run SI, AP and LR.

    Each index axis is matched to the patient axis its direction cosine points along most; ties
    (oblique 45 degree acquisitions) are broken by the assignment with the largest total cosine.
    """
    direction = np.abs(np.array(image.GetDirection(), dtype=float).reshape(3, 3))  # [physical, index]
    best = max(itertools.permutations(range(3)), key=lambda p: sum(direction[p[i], i] for i in range(3)))
    # best[i] = physical LPS axis of index axis i (0 = L-R, 1 = A-P, 2 = S-I).
    index_of_physical = {phys: idx for idx, phys in enumerate(best)}
    # paper axis 0 (SI) is physical 2, 1 (AP) is physical 1, 2 (LR) is physical 0;
    # numpy axis = 2 - index axis.
    return tuple(2 - index_of_physical[2 - p] for p in range(3))  # type: ignore[return-value]


def to_paper(image: sitk.Image) -> np.ndarray:
    """The image's voxels as a float32 array in paper order (SI, AP, LR)."""
    return np.ascontiguousarray(np.transpose(sitk.GetArrayFromImage(image), paper_axes(image)), dtype=np.float32)


def from_paper(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """Put a paper-order array back on ``reference``'s grid (same size, spacing, origin, direction)."""
    axes = paper_axes(reference)
    native = np.transpose(array, np.argsort(axes))
    if native.shape != sitk.GetArrayViewFromImage(reference).shape:
        raise ValueError(f"array of shape {array.shape} does not fit the reference grid")
    image = sitk.GetImageFromArray(np.ascontiguousarray(native))
    image.CopyInformation(reference)
    return image


def paper_spacing(image: sitk.Image) -> tuple[float, float, float]:
    """Voxel size in mm along SI, AP and LR."""
    spacing = image.GetSpacing()
    return tuple(float(spacing[2 - a]) for a in paper_axes(image))  # type: ignore[return-value]


def paper_index_axis(image: sitk.Image, paper_axis: int) -> int:
    """The image index axis (0 = i/x, 1 = j/y, 2 = k/z) that runs along a paper axis."""
    return 2 - paper_axes(image)[paper_axis]


def same_grid(a: sitk.Image, b: sitk.Image, tol: float = 1e-4) -> bool:
    """True when two images share size, spacing, origin and direction."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol * max(1.0, max(a.GetSpacing())))
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tol)
    )


def check_same_grid(images: dict[str, sitk.Image]) -> None:
    """Raise a clear error when inputs that must be voxel-aligned are not."""
    names = list(images)
    first = images[names[0]]
    for name in names[1:]:
        if not same_grid(first, images[name]):
            raise MRSynthError(
                f"{names[0]} and {name} lie on different grids (size {first.GetSize()} vs {images[name].GetSize()}, "
                f"spacing {first.GetSpacing()} vs {images[name].GetSpacing()}): register and resample them first"
            )
