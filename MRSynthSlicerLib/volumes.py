"""MRML volume nodes <-> SimpleITK images, keeping the exact geometry, and the display of outputs.

Slicer stores a volume's geometry as IJK-to-RAS (origin, spacing, direction cosines in RAS); ITK and
SimpleITK use LPS. The two differ by negating the first two physical axes, which this module does
in one place. Voxels keep the numpy order ``[k, j, i]`` on both sides, so no transpose is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk

from mrsynth.errors import MRSynthError

_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])
RE_COLOR_ID = "vtkMRMLPETProceduralColorNodePET-Heat"
DSSIM_COLOR_ID = "vtkMRMLColorTableNodeIron"
T2_COLOR_ID = "vtkMRMLColorTableNodeRainbow"
T2_WINDOW_MS = (0.0, 200.0)
OVERLAY_OPACITY = 0.5
_COLOR_LOGICS: list[Any] = []  # a colour logic removes its default colour nodes when it is deleted


def _directions(node: Any) -> np.ndarray:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASDirectionMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(3)] for r in range(3)])


def image_from_node(node: Any, name: str = "volume") -> sitk.Image:
    """The volume node's voxels and geometry as a float32 SimpleITK image (in LPS, as ITK expects)."""
    import slicer

    if node is None or node.GetImageData() is None:
        raise MRSynthError(f"{name} is empty: select a volume that holds an image")
    if node.GetParentTransformNode() is not None:
        raise MRSynthError(
            f"{name} ({node.GetName()}) is under a transform: harden the transform (Data module) or remove it first"
        )
    array = np.asarray(slicer.util.arrayFromVolume(node), dtype=np.float32)
    if array.ndim != 3:
        raise MRSynthError(f"{name} ({node.GetName()}) is not a scalar volume: select a scalar volume")
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(tuple(float(s) for s in node.GetSpacing()))
    origin = np.array(node.GetOrigin(), dtype=float)
    image.SetOrigin(tuple(float(v) for v in _LPS_FROM_RAS @ origin))
    image.SetDirection(tuple(float(v) for v in (_LPS_FROM_RAS @ _directions(node)).ravel()))
    return image


def update_node_from_image(node: Any, image: sitk.Image) -> Any:
    """Put a SimpleITK image's voxels and geometry into ``node`` (converting LPS to RAS)."""
    import slicer

    slicer.util.updateVolumeFromArray(node, sitk.GetArrayFromImage(image))
    node.SetSpacing(*image.GetSpacing())
    node.SetOrigin(*(float(v) for v in _LPS_FROM_RAS @ np.array(image.GetOrigin())))
    ras = _LPS_FROM_RAS @ np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    node.SetIJKToRASDirections(*(float(v) for v in ras.ravel()))
    node.Modified()
    return node


def copy_geometry(target: Any, source: Any) -> None:
    """Give ``target`` exactly ``source``'s origin, spacing and directions, bit for bit.

    A volume node ignores a new spacing, origin or direction within a small tolerance of its
    current one, which would keep a file header's rounding; so each is first set far away.
    """
    directions = [[0.0] * 3 for _ in range(3)]
    source.GetIJKToRASDirections(directions)
    spacing, origin = source.GetSpacing(), source.GetOrigin()
    target.SetIJKToRASDirections([[-v for v in row] for row in directions])
    target.SetIJKToRASDirections(directions)
    target.SetSpacing(*(2 * s + 1 for s in spacing))
    target.SetSpacing(*spacing)
    target.SetOrigin(*(o + 1 for o in origin))
    target.SetOrigin(*origin)


def add_volume(scene: Any, image: sitk.Image, name: str, node: Any = None, labels: bool = False) -> Any:
    """A volume node holding ``image`` (a new one unless ``node`` is given), with display nodes."""
    if node is None:
        node_class = "vtkMRMLLabelMapVolumeNode" if labels else "vtkMRMLScalarVolumeNode"
        node = scene.AddNewNodeByClass(node_class, scene.GenerateUniqueName(name))
    update_node_from_image(node, image)
    node.CreateDefaultDisplayNodes()
    return node


def ensure_color_node(scene: Any, color_id: str) -> Any:
    """The default colour node ``color_id``; a bare scene (no application) gets Slicer's defaults first."""
    found = scene.GetNodeByID(color_id)
    if found is None:
        import slicer

        logic = slicer.vtkMRMLColorLogic()
        logic.SetMRMLScene(scene)
        _COLOR_LOGICS.append(logic)
        found = scene.GetNodeByID(color_id)
    if found is None:
        raise MRSynthError(f"colour table {color_id} is missing from the scene: restart Slicer")
    return found


def show_as_map(node: Any, color_id: str, window: tuple[float, float]) -> None:
    """Display an error map with a colour table and a fixed range, so cases compare at a glance."""
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(ensure_color_node(node.GetScene(), color_id).GetID())
    display.AutoWindowLevelOff()
    low, high = window
    display.SetWindowLevelMinMax(low, high)
    display.SetThreshold(1e-6, float(np.finfo(np.float32).max))
    display.ApplyThresholdOn()  # voxels outside the body (0) stay transparent over the reference


def show_overlay(background: Any, foreground: Any) -> None:
    """Show ``foreground`` over ``background`` in every slice view (no-op without views, e.g. headless)."""
    scene = background.GetScene()
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        composite = scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
        composite.SetBackgroundVolumeID(background.GetID())
        composite.SetForegroundVolumeID(foreground.GetID())
        composite.SetForegroundOpacity(OVERLAY_OPACITY)


def metrics_table(scene: Any, metrics: dict[str, dict[str, float]], name: str, node: Any = None) -> Any:
    """A table node with one row per region (body, bone) and the columns of ``mrsynth evaluate``."""
    import vtk

    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    table = vtk.vtkTable()
    region = vtk.vtkStringArray()
    region.SetName("region")
    table.AddColumn(region)
    columns = {"mae": "MAE", "mi": "MI (nats)", "ssim": "SSIM", "psnr": "PSNR (dB)", "voxels": "voxels"}
    arrays = {}
    for key, title in columns.items():
        array = vtk.vtkDoubleArray()
        array.SetName(title)
        table.AddColumn(array)
        arrays[key] = array
    for name_, values in metrics.items():
        region.InsertNextValue(name_)
        for key, array in arrays.items():
            value = values.get(key)
            array.InsertNextValue(float("nan") if value is None else float(value))
    node.SetAndObserveTable(table)
    node.SetUseColumnTitleAsColumnHeader(True)
    return node


def table_values(node: Any) -> dict[str, dict[str, float]]:
    """The metrics held by a table from ``metrics_table``, keyed like ``EvaluationResult.metrics``."""
    table = node.GetTable()
    keys = {"MAE": "mae", "MI (nats)": "mi", "SSIM": "ssim", "PSNR (dB)": "psnr", "voxels": "voxels"}
    out: dict[str, dict[str, float]] = {}
    for row in range(table.GetNumberOfRows()):
        region = table.GetValueByName(row, "region").ToString()
        out[region] = {key: table.GetValueByName(row, title).ToDouble() for title, key in keys.items()}
    return out
