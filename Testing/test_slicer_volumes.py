"""MRML volume nodes (real slicer-core) <-> SimpleITK: geometry, LPS/RAS, display and metrics tables."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from slicer_support import add_extension_paths, require_slicer_core

require_slicer_core()
add_extension_paths()

import slicer  # noqa: E402
import vtk  # noqa: E402

from MRSynthSlicerLib import volumes  # noqa: E402


def oblique_image(size=(7, 6, 5), seed=0) -> sitk.Image:
    """Random voxels on an oblique grid with non-unit, anisotropic spacing."""
    rng = np.random.default_rng(seed)
    image = sitk.GetImageFromArray(rng.random(size[::-1], dtype=np.float32))
    rotation = sitk.VersorTransform((0.3, 0.5, 0.8), 0.4).GetMatrix()
    image.SetDirection(rotation)
    image.SetSpacing((0.7, 1.3, 2.9))
    image.SetOrigin((12.5, -40.25, 7.0))
    return image


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


def test_node_geometry_is_the_image_geometry_in_ras(scene):
    image = oblique_image()
    node = volumes.add_volume(scene, image, "oblique")
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    for ijk in [(0, 0, 0), (1, 2, 3), (6, 5, 4)]:
        ras = np.array(matrix.MultiplyPoint((*ijk, 1)))[:3]
        lps = np.array(image.TransformIndexToPhysicalPoint(ijk))
        np.testing.assert_allclose(ras, lps * [-1, -1, 1], atol=1e-12)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), sitk.GetArrayFromImage(image))


def test_round_trip_is_exact(scene):
    image = oblique_image()
    back = volumes.image_from_node(volumes.add_volume(scene, image, "oblique"))
    assert back.GetSize() == image.GetSize()
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


def test_slicers_own_nrrd_writer_agrees(scene, tmp_path):
    """Slicer's storage node writes LPS NRRD; ITK reading it must see the geometry image_from_node gives."""
    node = volumes.add_volume(scene, oblique_image(), "oblique")
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(tmp_path / "slicer.nrrd"))
    assert storage.WriteData(node)
    written = sitk.ReadImage(str(tmp_path / "slicer.nrrd"))
    ours = volumes.image_from_node(node)
    np.testing.assert_allclose(written.GetOrigin(), ours.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(written.GetDirection(), ours.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(written.GetSpacing(), ours.GetSpacing(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(ours))


def test_transformed_and_empty_nodes_are_refused(scene):
    from mrsynth.errors import MRSynthError

    node = volumes.add_volume(scene, oblique_image(), "moved")
    node.SetAndObserveTransformNodeID(scene.AddNewNodeByClass("vtkMRMLLinearTransformNode").GetID())
    with pytest.raises(MRSynthError, match="harden the transform"):
        volumes.image_from_node(node, "input 1")
    with pytest.raises(MRSynthError, match="empty"):
        volumes.image_from_node(scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode"), "input 1")


def test_map_display_and_metrics_table(scene):
    node = volumes.add_volume(scene, oblique_image(), "RE")
    volumes.show_as_map(node, volumes.RE_COLOR_ID, (0.0, 0.5))
    display = node.GetDisplayNode()
    assert display.GetColorNodeID() == volumes.RE_COLOR_ID
    assert (display.GetWindow(), display.GetLevel()) == pytest.approx((0.5, 0.25))
    assert display.GetApplyThreshold() and not display.GetAutoWindowLevel()
    metrics = {"body": {"mae": 0.1, "mi": 0.9, "ssim": 0.95, "psnr": 30.5, "voxels": 1000}}
    table = volumes.metrics_table(scene, metrics, "metrics")
    assert table.GetNumberOfRows() == 1
    assert volumes.table_values(table) == metrics


def test_overlay_goes_to_every_slice_view(scene):
    background = volumes.add_volume(scene, oblique_image(), "reference")
    foreground = volumes.add_volume(scene, oblique_image(seed=1), "RE")
    views = [scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(3)]
    volumes.show_overlay(background, foreground)
    for view in views:
        assert view.GetBackgroundVolumeID() == background.GetID()
        assert view.GetForegroundVolumeID() == foreground.GetID()
        assert view.GetForegroundOpacity() == pytest.approx(volumes.OVERLAY_OPACITY)
