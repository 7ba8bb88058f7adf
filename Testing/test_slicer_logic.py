"""The modules' Logic classes on a real slicer-core MRML scene, with the synthesis in a real child process.

A small subject simulated from the bundled BrainWeb phantom is put on an oblique grid with non-unit
spacing; the synthetic volume must come back on exactly the input node's geometry, the thick-slice
volume on the thick grid, the maps on the reference with their colour tables, and the metrics table
must hold what ``mrsynth evaluate`` reports for the same volumes.
"""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from slicer_support import add_extension_paths, require_slicer_core

require_slicer_core()
add_extension_paths()

import slicer  # noqa: E402
import vtk  # noqa: E402

from ContrastSynthesisLib.logic import ContrastSynthesisLogic  # noqa: E402
from mrsynth import cli  # noqa: E402
from mrsynth.checkpoint import ModelInfo, save_checkpoint  # noqa: E402
from mrsynth.errors import Cancelled, MRSynthError  # noqa: E402
from mrsynth.grids import thick_grid  # noqa: E402
from mrsynth.inference import InferenceOptions  # noqa: E402
from mrsynth.models import load_model, sha256_of  # noqa: E402
from mrsynth.networks import MRSR  # noqa: E402
from mrsynth.simulate import bundled_phantom, simulate  # noqa: E402
from mrsynth.superres import superresolve  # noqa: E402
from mrsynth.synthesis import synthesize  # noqa: E402
from mrsynth.thick_slices import slice_axis_of, to_thin  # noqa: E402
from mrsynth.volume_io import same_grid, to_paper  # noqa: E402
from MRSynthSlicerLib import models as slicer_models  # noqa: E402
from MRSynthSlicerLib import registration, volumes  # noqa: E402
from MRSynthSlicerLib.models import no_model_message  # noqa: E402
from SuperResolutionLib.logic import SuperResolutionLogic  # noqa: E402

SPACING = (0.95, 1.1, 1.05)
ORIGIN = (-30.0, 12.5, 44.0)


def _oblique(image: sitk.Image) -> sitk.Image:
    """The same voxels on an oblique grid (about 15 degrees off the BrainWeb axes), non-unit spacing."""
    out = sitk.Image(image)
    tilt = np.array(sitk.VersorTransform((1.0, 0.4, 0.2), 0.26).GetMatrix()).reshape(3, 3)
    out.SetDirection(tuple((tilt @ np.array(image.GetDirection()).reshape(3, 3)).ravel()))
    out.SetSpacing(SPACING)
    out.SetOrigin(ORIGIN)
    return out


@pytest.fixture(scope="module")
def subject() -> dict[str, sitk.Image]:
    sim = simulate(bundled_phantom()[60:108, 110:158, 70:102], "brainweb", seed=1)  # holds skull: bone metrics
    return {name: _oblique(image) for name, image in sim.items() if not name.endswith("thick")} | {
        "TSE_thick": sim["TSE_thick"]
    }


@pytest.fixture(scope="module")
def scene_and_nodes(subject):
    scene = slicer.vtkMRMLScene()
    nodes = {name: volumes.add_volume(scene, subject[name], name) for name in ("GE_aOP", "GE_aIP", "TSE_HR")}
    for mask in ("head_mask", "bone_mask"):
        nodes[mask] = volumes.add_volume(scene, subject[mask], mask, labels=True)
    return scene, nodes


@pytest.fixture(scope="module")
def run(scene_and_nodes):
    """One blocking run of the bundled model through the logic, with reference and body mask."""
    scene, nodes = scene_and_nodes
    progress = []
    outputs = ContrastSynthesisLogic(scene).process(
        [nodes["GE_aOP"], nodes["GE_aIP"]],
        "gre-to-tse-sim",
        referenceVolume=nodes["TSE_HR"],
        maskVolume=nodes["head_mask"],
        boneMaskVolume=nodes["bone_mask"],
        onProgress=lambda done, total: progress.append((done, total)),
    )
    return outputs, progress


def _geometry(node) -> tuple:
    """Origin, spacing and direction cosines exactly as the node stores them."""
    directions = [[0.0] * 3 for _ in range(3)]
    node.GetIJKToRASDirections(directions)
    return tuple(node.GetOrigin()), tuple(node.GetSpacing()), tuple(map(tuple, directions))


def _matrix(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def test_synthetic_volume_has_exactly_the_input_geometry(run, scene_and_nodes):
    outputs, progress = run
    _, nodes = scene_and_nodes
    assert outputs.volume.GetImageData().GetDimensions() == nodes["GE_aOP"].GetImageData().GetDimensions()
    assert _geometry(outputs.volume) == _geometry(nodes["GE_aOP"])
    np.testing.assert_allclose(_matrix(outputs.volume), _matrix(nodes["GE_aOP"]), rtol=0, atol=1e-12)
    assert progress and progress[-1][0] == progress[-1][1]
    assert outputs.volume.GetName() == "GE_aOP_gre-to-tse-sim_HR"
    assert outputs.volume.GetDisplayNode() is not None


def test_synthetic_voxels_equal_the_library_result(run, subject):
    outputs, _ = run
    model = load_model("gre-to-tse-sim")
    direct = synthesize(model, [subject["GE_aOP"], subject["GE_aIP"]], mask=subject["head_mask"]).hr
    np.testing.assert_allclose(slicer.util.arrayFromVolume(outputs.volume), sitk.GetArrayFromImage(direct), atol=1e-5)


def test_bfloat16_reaches_the_library_and_float16_is_refused_on_the_cpu(run, scene_and_nodes, subject):
    """The panel's precision goes into the worker's inference options: the library's bfloat16 result, bit
    for bit, within about 1 % of float32's and not equal to it; float16 stops with the library's message."""
    scene, nodes = scene_and_nodes
    logic = ContrastSynthesisLogic(scene)
    inputs = [nodes["GE_aOP"], nodes["GE_aIP"]]
    outputs = logic.process(inputs, "gre-to-tse-sim", maskVolume=nodes["head_mask"], device="cpu", precision="bfloat16")
    half = slicer.util.arrayFromVolume(outputs.volume)
    direct = synthesize(
        load_model("gre-to-tse-sim"),
        [subject["GE_aOP"], subject["GE_aIP"]],
        mask=subject["head_mask"],
        device="cpu",
        options=InferenceOptions.preset("fast", precision="bfloat16"),
    ).hr
    np.testing.assert_allclose(half, sitk.GetArrayFromImage(direct), atol=1e-5)
    full = slicer.util.arrayFromVolume(run[0].volume)
    difference = np.abs(half - full).max() / np.percentile(full, 99)
    assert 0 < difference < 0.05
    with pytest.raises(MRSynthError, match="float16 needs a CUDA device"):
        logic.process(inputs, "gre-to-tse-sim", device="cpu", precision="float16")


def test_thick_slice_volume_lies_on_the_thick_grid(run, subject):
    outputs, _ = run
    lr = volumes.image_from_node(outputs.lrVolume)
    expected = thick_grid(subject["GE_aOP"], 4)
    assert same_grid(lr, expected, tol=1e-6)


def test_maps_overlay_the_reference_with_colour_tables(run, scene_and_nodes):
    outputs, _ = run
    _, nodes = scene_and_nodes
    for node, color in ((outputs.reMap, volumes.RE_COLOR_ID), (outputs.dssimMap, volumes.DSSIM_COLOR_ID)):
        assert _geometry(node) == _geometry(nodes["TSE_HR"])
        assert node.GetDisplayNode().GetColorNodeID() == color
        assert node.GetDisplayNode().GetApplyThreshold()
    assert outputs.reMap.GetName().endswith("_RE") and outputs.dssimMap.GetName().endswith("_dSSIM")


def test_metrics_table_holds_what_mrsynth_evaluate_reports(run, scene_and_nodes, tmp_path):
    outputs, _ = run
    _, nodes = scene_and_nodes
    paths = {}
    named = (
        ("pred", outputs.volume),
        ("ref", nodes["TSE_HR"]),
        ("mask", nodes["head_mask"]),
        ("bone", nodes["bone_mask"]),
    )
    for name, node in named:
        paths[name] = tmp_path / f"{name}.nrrd"
        sitk.WriteImage(volumes.image_from_node(node), str(paths[name]))
    report = tmp_path / "metrics.json"
    argv = ["evaluate", str(paths["pred"]), str(paths["ref"]), "--mask", str(paths["mask"])]
    assert cli.main([*argv, "--bone-mask", str(paths["bone"]), "--json", str(report)]) == 0
    expected = json.loads(report.read_text())["metrics"]
    table = volumes.table_values(outputs.metricsTable)
    assert set(table) == {"body", "bone"}
    for region in ("body", "bone"):
        for key in ("mae", "mi", "ssim", "psnr", "voxels"):
            assert table[region][key] == pytest.approx(expected[region][key], rel=1e-9), (region, key)
    assert expected["body"]["ssim"] > 0.5


def test_cancel_leaves_nothing_in_the_scene(scene_and_nodes):
    scene, nodes = scene_and_nodes
    before = scene.GetNumberOfNodes()
    job = ContrastSynthesisLogic(scene).process(
        [nodes["GE_aOP"], nodes["GE_aIP"]], "gre-to-tse-sim", preset="smooth", waitForCompletion=False
    )
    folder = job.folder
    assert job.poll() is True
    job.cancel()
    assert job.state == "cancelled" and job.outputs is None
    assert scene.GetNumberOfNodes() == before
    assert not folder.exists()
    with pytest.raises(Cancelled):
        job.wait()


def test_an_error_in_the_child_is_raised_with_its_message(scene_and_nodes):
    scene, nodes = scene_and_nodes
    before = scene.GetNumberOfNodes()
    with pytest.raises(MRSynthError, match="takes 2 inputs"):
        ContrastSynthesisLogic(scene).process([nodes["GE_aOP"]], "gre-to-tse-sim")
    assert scene.GetNumberOfNodes() == before


def test_parameter_node_is_a_singleton(scene_and_nodes):
    scene, _ = scene_and_nodes
    logic = ContrastSynthesisLogic(scene)
    node = logic.getParameterNode()
    assert node is logic.getParameterNode() or node.GetID() == logic.getParameterNode().GetID()
    assert node.GetModuleName() == "ContrastSynthesis" and node.GetSingletonTag() == "ContrastSynthesis"


def test_model_choices_follow_the_registry_task():
    choices = ContrastSynthesisLogic(slicer.vtkMRMLScene()).modelChoices()
    bundled = next(choice for choice in choices if choice.name == "gre-to-tse-sim")
    assert bundled.inputs == ["GE_aOP", "GE_aIP"] and bundled.ready and "Model card" in bundled.card


# --- super-resolution -----------------------------------------------------------------------


def _tiny_sr_entry(folder, name: str, inputs: list[str], outputs: list[str], residual: bool = False) -> dict:
    """A tiny untrained MRSR (x4, any slice axis) taking ``inputs``, saved in ``folder``, and its registry entry.

    Untrained, its residual is zero; ``residual`` gives its last layer random weights so that it has one.
    """
    torch.manual_seed(0)
    arguments = {"in_channels": len(inputs), "out_channels": len(outputs), "depth": 3, "width": 4}
    network = MRSR(**arguments)
    if residual:
        for parameter in network.head.parameters():
            torch.nn.init.normal_(parameter, std=0.05)
    info = ModelInfo(
        name=name,
        architecture="MRSR",
        arguments=arguments,
        inputs=inputs,
        output=outputs[0],
        outputs=outputs,
        voxel_size=[1.0, 1.0, 1.0],
        patch=[32, 32, 32],
        stride=[16, 16, 16],
        approach="residual-on-interpolation",
        task="super-resolution",
        slice_factor=4,
        slice_axis="any",
    )
    path = save_checkpoint(folder / f"{name}.pt", network, info)
    return {
        "name": name,
        "version": "1",
        "task": "super-resolution",
        "inputs": inputs,
        "output": outputs[0],
        "voxel_size": [1.0, 1.0, 1.0],
        "orientation": "any",
        "patch": [32, 32, 32],
        "stride": [16, 16, 16],
        "mode": "fast",
        "file": path.name,
        "sha256": sha256_of(path),
        "size": path.stat().st_size,
        "licence": "Apache-2.0",
        "card_text": f"# {name}\n\nA test model.",
        **({"outputs": outputs} if len(outputs) > 1 else {}),
    }


@pytest.fixture
def sr_registry(tmp_path, monkeypatch):
    """A site registry with tiny untrained MRSRs: single-contrast ("tiny-sr"), two-contrast ("tiny-sr-2"), and
    single-contrast with a nonzero residual ("tiny-sr-residual")."""
    single = _tiny_sr_entry(tmp_path, "tiny-sr", ["thick-slice image (any contrast)"], ["thin-slice image"])
    double = _tiny_sr_entry(tmp_path, "tiny-sr-2", ["T1w (thick)", "T2w (thick)"], ["T1w", "T2w"])
    residual = _tiny_sr_entry(tmp_path, "tiny-sr-residual", ["thick-slice image (any contrast)"], ["thin"], True)
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"schema_version": 2, "models": [single, double, residual]}))
    monkeypatch.setenv("MRSYNTH_REGISTRY", str(registry))
    return "tiny-sr"


def test_no_super_resolution_model_gives_a_clear_message(monkeypatch):
    everything = slicer_models.registry()
    without = {name: e for name, e in everything.items() if e.task != "super-resolution"}
    monkeypatch.setattr(slicer_models, "registry", lambda: without)  # an install without super-resolution models
    logic = SuperResolutionLogic(slicer.vtkMRMLScene())
    assert logic.modelChoices() == []
    with pytest.raises(MRSynthError, match="no super-resolution model is registered"):
        logic.targetSpacing("superres-x4-sim")
    assert "Import model file" in no_model_message("super-resolution")


def test_super_resolution_restores_the_thin_grid(sr_registry, subject):
    scene = slicer.vtkMRMLScene()
    logic = SuperResolutionLogic(scene)
    assert sr_registry in [choice.name for choice in logic.modelChoices()]
    assert logic.targetSpacing(sr_registry) == [1.0, 1.0, 1.0]
    sim = simulate(bundled_phantom()[60:108, 60:108, 70:102], "brainweb", seed=2)
    thick = volumes.add_volume(scene, sim["TSE_thick"], "TSE_thick")
    reference = volumes.add_volume(scene, sim["TSE_HR"], "TSE_HR")
    outputs = logic.process(thick, sr_registry, referenceVolume=reference)
    restored = volumes.image_from_node(outputs.volume)
    assert same_grid(restored, sim["TSE_HR"], tol=1e-6)  # four thin slices per thick one, where the truth lies
    # an untrained (zero-residual) MRSR returns the cubic interpolation, in the input's units
    expected = to_thin(to_paper(sim["TSE_thick"]), slice_axis_of(sim["TSE_thick"]), 4)
    np.testing.assert_allclose(to_paper(restored), expected, rtol=1e-4, atol=1e-3 * float(expected.max()))
    assert outputs.lrVolume is None and outputs.moreVolumes == []
    assert set(volumes.table_values(outputs.metricsTable)) == {"body"}


def test_a_two_contrast_model_restores_both_inputs(sr_registry, subject):
    scene = slicer.vtkMRMLScene()
    logic = SuperResolutionLogic(scene)
    sim = simulate(bundled_phantom()[60:108, 60:108, 70:102], "brainweb", seed=2)
    t1 = volumes.add_volume(scene, sim["TSE_thick"], "T1w_thick")
    t2 = volumes.add_volume(scene, sim["TSE_T2_thick"], "T2w_thick")
    outputs = logic.process([t1, t2], "tiny-sr-2")
    assert len(outputs.moreVolumes) == 1 and outputs.moreVolumes[0].GetName() == "T2w_thick_tiny-sr-2_HR"
    axis = slice_axis_of(sim["TSE_thick"])
    for node, thick in ((outputs.volume, sim["TSE_thick"]), (outputs.moreVolumes[0], sim["TSE_T2_thick"])):
        restored = volumes.image_from_node(node)
        assert same_grid(restored, sim["TSE_T2_HR"], tol=1e-6)
        # untrained (zero residual): each output is its own input's cubic interpolation, in its units
        expected = to_thin(to_paper(thick), axis, 4)
        np.testing.assert_allclose(to_paper(restored), expected, rtol=1e-4, atol=1e-3 * float(expected.max()))
    with pytest.raises(MRSynthError, match="takes 2 contrasts"):
        logic.process(t1, "tiny-sr-2")


def test_back_projection_reaches_the_library_and_is_refused_for_synthesis(sr_registry, scene_and_nodes):
    scene = slicer.vtkMRMLScene()
    logic = SuperResolutionLogic(scene)
    sim = simulate(bundled_phantom()[60:108, 60:108, 70:102], "brainweb", seed=2)
    thick = volumes.add_volume(scene, sim["TSE_thick"], "TSE_thick")
    outputs = logic.process(thick, sr_registry, backProjections=2)
    restored = to_paper(volumes.image_from_node(outputs.volume))
    expected = superresolve(load_model(sr_registry), [sim["TSE_thick"]], device="cpu", back_projections=2).outputs[0]
    np.testing.assert_allclose(restored, to_paper(expected), rtol=1e-4, atol=1e-4 * float(restored.max()))
    plain = to_thin(to_paper(sim["TSE_thick"]), slice_axis_of(sim["TSE_thick"]), 4)  # the untrained model's output
    assert np.abs(restored - plain).max() > 1e-3 * float(plain.max())  # back-projection changed it
    synthesis_scene, nodes = scene_and_nodes
    with pytest.raises(MRSynthError, match="back-projection"):
        ContrastSynthesisLogic(synthesis_scene).process(
            [nodes["GE_aOP"], nodes["GE_aIP"]], "gre-to-tse-sim", backProjections=1
        )


def test_in_plane_flip_reaches_the_library_and_is_refused_for_synthesis(sr_registry, scene_and_nodes):
    scene = slicer.vtkMRMLScene()
    logic = SuperResolutionLogic(scene)
    sim = simulate(bundled_phantom()[60:108, 60:108, 70:102], "brainweb", seed=2)
    thick = volumes.add_volume(scene, sim["TSE_thick"], "TSE_thick")
    restored = to_paper(volumes.image_from_node(logic.process(thick, "tiny-sr-residual", inPlaneFlip=True).volume))
    model = load_model("tiny-sr-residual")
    expected, single = (
        to_paper(superresolve(model, [sim["TSE_thick"]], device="cpu", in_plane_flip=flip).outputs[0])
        for flip in (True, False)
    )
    np.testing.assert_allclose(restored, expected, rtol=1e-4, atol=1e-4 * float(restored.max()))
    assert np.abs(restored - single).max() > 1e-3 * float(single.max())  # the mirrored passes changed it
    synthesis_scene, nodes = scene_and_nodes
    with pytest.raises(MRSynthError, match="in-plane mirrored pass belongs to super-resolution"):
        ContrastSynthesisLogic(synthesis_scene).process(
            [nodes["GE_aOP"], nodes["GE_aIP"]], "gre-to-tse-sim", inPlaneFlip=True
        )


def test_t2_map_of_dess_echoes_matches_the_library_on_the_echoes_grid():
    from mrsynth.dess import simulate_dess
    from mrsynth.simulate import load_spec
    from mrsynth.t2_map import DessProtocol, t2_map

    dess = simulate_dess(to_paper(bundled_phantom())[60:90, 60:100, 60:100].astype(np.int64), "brainweb", load_spec())
    images = {name: _oblique(sitk.GetImageFromArray(dess[name].astype(np.float32))) for name in ("S1", "S2", "T1")}
    scene = slicer.vtkMRMLScene()
    nodes = {name: volumes.add_volume(scene, image, f"DESS_{name}") for name, image in images.items()}
    logic = SuperResolutionLogic(scene)
    node = logic.t2Map(nodes["S1"], nodes["S2"], tr=23, te=7, flip=20, t1=nodes["T1"])
    assert node.GetName() == "DESS_S1_T2map" and _geometry(node) == _geometry(nodes["S1"])
    expected = t2_map(images["S1"], images["S2"], DessProtocol(23, 7, 20), images["T1"]).image
    np.testing.assert_allclose(slicer.util.arrayFromVolume(node), sitk.GetArrayFromImage(expected), rtol=1e-6)
    assert node.GetDisplayNode().GetColorNodeID() == volumes.T2_COLOR_ID
    again = logic.t2Map(nodes["S1"], nodes["S2"], tr=23, te=7, flip=20, t1=500.0, outputVolume=node)
    assert again is node and not np.allclose(slicer.util.arrayFromVolume(node), sitk.GetArrayFromImage(expected))
    with pytest.raises(MRSynthError, match="need 0 < TE < TR"):
        logic.t2Map(nodes["S1"], nodes["S2"], tr=7, te=23, flip=20, t1=500.0)


# --- registration -----------------------------------------------------------------------------


def test_registration_without_parameter_files_says_so(tmp_path, scene_and_nodes):
    _, nodes = scene_and_nodes
    assert registration.presets(tmp_path / "missing") == {}
    with pytest.raises(MRSynthError, match="no elastix parameter files"):
        registration.register_inputs([nodes["GE_aOP"], nodes["GE_aIP"]], None, "rigid", tmp_path / "missing")


def test_registration_presets_from_the_library(scene_and_nodes):
    if not registration.presets():
        pytest.skip(f"{registration.parameter_folder()} is missing: registration is not on this branch yet")
    _, nodes = scene_and_nodes
    assert "rigid" in registration.presets()
    with pytest.raises(MRSynthError, match="SlicerElastix"):  # the Elastix module exists only inside Slicer
        registration.register_inputs([nodes["GE_aOP"], nodes["GE_aIP"]], nodes["TSE_HR"], "rigid")


def test_registration_presets_that_slicer_elastix_can_run(tmp_path, monkeypatch, scene_and_nodes):
    """With a stand-in for the registration branch's ``mrsynth.registration.PRESETS`` and files."""
    _, nodes = scene_and_nodes
    stand_in = types.ModuleType("mrsynth.registration")
    stand_in.PRESETS = {"rigid": ("rigid.txt",), "two-stage": ("rigid.txt", "b.txt"), "stiff": ("rigid.txt", "r.txt")}
    monkeypatch.setitem(sys.modules, "mrsynth.registration", stand_in)
    (tmp_path / "rigid.txt").write_text('(Transform "EulerTransform")\n')
    (tmp_path / "b.txt").write_text('(Transform "BSplineTransform")\n')
    (tmp_path / "r.txt").write_text('(Metric "AdvancedMattesMutualInformation" "TransformRigidityPenalty")\n')
    found = registration.presets(tmp_path)
    assert found == {"rigid": [tmp_path / "rigid.txt"], "two-stage": [tmp_path / "rigid.txt", tmp_path / "b.txt"]}
    with pytest.raises(MRSynthError, match="unknown registration preset 'stiff'"):
        registration.register_inputs([nodes["GE_aOP"]], None, "stiff", tmp_path)
    with pytest.raises(MRSynthError, match="SlicerElastix"):
        registration.register_inputs([nodes["GE_aOP"], nodes["GE_aIP"]], None, "two-stage", tmp_path)


def test_in_plane_matching_reaches_the_library_and_can_be_turned_off(sr_registry, scene_and_nodes, tmp_path):
    """A thick input on 0.4 mm in-plane voxels: on by default, off on request, refused for synthesis."""
    scene = slicer.vtkMRMLScene()
    logic = SuperResolutionLogic(scene)
    sim = simulate(bundled_phantom()[60:108, 60:108, 70:102], "brainweb", seed=2)
    fine = sim["TSE_thick"]
    fine.SetSpacing([0.4 if s < 2 else s for s in fine.GetSpacing()])  # in-plane 0.4 mm, the slices as they were
    thick = volumes.add_volume(scene, fine, "TSE_thick")
    model = load_model(sr_registry)
    with torch.no_grad():
        model.network.head.weight.normal_(std=0.1)  # a live residual, so that the two paths differ
    live = save_checkpoint(tmp_path / "live.pt", model.network, model.info)  # a checkpoint file, as users give
    for match in (True, False):
        outputs = logic.process(thick, str(live), matchInPlane=match)
        restored = to_paper(volumes.image_from_node(outputs.volume))
        expected = superresolve(model, [fine], device="cpu", match_in_plane=match).outputs[0]
        np.testing.assert_allclose(restored, to_paper(expected), rtol=1e-4, atol=1e-4 * float(restored.max()))
    synthesis_scene, nodes = scene_and_nodes
    with pytest.raises(MRSynthError, match="in-plane"):
        ContrastSynthesisLogic(synthesis_scene).process([nodes["GE_aOP"], nodes["GE_aIP"]], "gre-to-tse-sim",
                                                        matchInPlane=False)  # fmt: skip
