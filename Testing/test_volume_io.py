"""Volume I/O keeps geometry; anatomical axes come from direction cosines; bad volumes are refused."""

import numpy as np
import pytest
import SimpleITK as sitk

from mrsynth.errors import MRSynthError
from mrsynth.volume_io import (
    check_same_grid,
    from_paper,
    paper_axes,
    paper_index_axis,
    paper_spacing,
    read_volume,
    to_paper,
    write_volume,
)

# Direction matrices (row-major, columns = index axes in LPS)
IDENTITY = (1, 0, 0, 0, 1, 0, 0, 0, 1)  # axial: i=L-R, j=A-P, k=S-I
BRAINWEB = (0, -1, 0, 1, 0, 0, 0, 0, -1)  # i=A-P, j=L-R, k=S-I (the shared phantom's)
SAGITTAL = (0, 0, -1, 1, 0, 0, 0, -1, 0)  # i=A-P, j=S-I, k=L-R


def _image(shape_xyz=(6, 7, 8), direction=IDENTITY, spacing=(0.5, 0.7, 0.9)) -> sitk.Image:
    array = np.arange(np.prod(shape_xyz), dtype=np.float32).reshape(shape_xyz[::-1]) + 1
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((10.0, -20.0, 30.0))
    image.SetDirection([float(v) for v in direction])
    return image


@pytest.mark.parametrize(
    "direction, expected_index_axes",
    [(IDENTITY, (2, 1, 0)), (BRAINWEB, (2, 0, 1)), (SAGITTAL, (1, 0, 2))],
)
def test_paper_axes_follow_direction_cosines(direction, expected_index_axes):
    image = _image(direction=direction)
    assert tuple(paper_index_axis(image, p) for p in range(3)) == expected_index_axes
    spacing = image.GetSpacing()
    assert paper_spacing(image) == tuple(spacing[i] for i in expected_index_axes)
    assert to_paper(image).shape == tuple(image.GetSize()[i] for i in expected_index_axes)


def test_oblique_direction_picks_closest_axes():
    angle = np.deg2rad(30)
    rot = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    image = _image(direction=tuple(rot.ravel()))
    assert paper_axes(image) == paper_axes(_image())


@pytest.mark.parametrize("direction", [IDENTITY, BRAINWEB, SAGITTAL])
@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_round_trip_keeps_geometry_and_voxels(tmp_path, direction, suffix):
    image = _image(direction=direction)
    path = write_volume(image, tmp_path / f"vol{suffix}")
    back = read_volume(path)
    assert back.GetSize() == image.GetSize()
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    again = from_paper(to_paper(back), back)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(again), sitk.GetArrayFromImage(image))
    assert [p.name for p in tmp_path.iterdir()] == [f"vol{suffix}"]  # no temporary file left


def test_dicom_series_folder(tmp_path):
    image = sitk.Cast(_image(shape_xyz=(8, 9, 5), spacing=(0.8, 0.8, 2.0)), sitk.sitkInt16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    uid = "1.2.826.0.1.3680043.2.1125.1"
    for k in range(image.GetDepth()):
        sl = image[:, :, k]
        for tag, value in (
            ("0020|000e", uid),
            ("0020|0032", "\\".join(map(str, image.TransformIndexToPhysicalPoint((0, 0, k))))),
            ("0020|0037", "1\\0\\0\\0\\1\\0"),
            ("0020|0013", str(k + 1)),
            ("0008|0060", "MR"),
        ):
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(tmp_path / f"slice{k:03d}.dcm"))
        writer.Execute(sl)
    back = read_volume(tmp_path)
    assert back.GetSize() == image.GetSize()
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


def test_missing_file(tmp_path):
    with pytest.raises(MRSynthError, match="does not exist"):
        read_volume(tmp_path / "nope.nii.gz")


def test_unreadable_file(tmp_path):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(MRSynthError, match="could not be read"):
        read_volume(bad)


def test_2d_image(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((5, 6), np.float32)), str(tmp_path / "a.nii.gz"))
    with pytest.raises(MRSynthError, match="2D"):
        read_volume(tmp_path / "a.nii.gz")


def test_4d_image(tmp_path):
    volume = sitk.GetImageFromArray(np.ones((3, 4, 5), np.float32))
    sitk.WriteImage(sitk.JoinSeries([volume, volume]), str(tmp_path / "a.nii.gz"))
    with pytest.raises(MRSynthError, match="4D"):
        read_volume(tmp_path / "a.nii.gz")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_voxels(tmp_path, value):
    # MetaImage keeps NaN/Inf as written (ITK's NIfTI reader turns NaN into 0 by itself).
    array = np.ones((4, 5, 6), np.float32)
    array[1, 2, 3] = value
    sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / "a.mha"))
    with pytest.raises(MRSynthError, match="NaN or Inf"):
        read_volume(tmp_path / "a.mha")


def test_all_zero(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.float32)), str(tmp_path / "a.nii.gz"))
    with pytest.raises(MRSynthError, match="all zero"):
        read_volume(tmp_path / "a.nii.gz")


def test_grids_differ():
    a, b = _image(), _image(spacing=(0.5, 0.7, 1.0))
    with pytest.raises(MRSynthError, match="different grids"):
        check_same_grid({"GE_aOP": a, "GE_aIP": b})


def test_output_folder_missing(tmp_path):
    with pytest.raises(MRSynthError, match="does not exist"):
        write_volume(_image(), tmp_path / "missing" / "out.nii.gz")
