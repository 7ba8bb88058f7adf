"""Param-to-Param through tissue maps (mrsynth.tissue_maps): rendering, conditioning, units, training."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from mrsynth.acquisition import condition_vector
from mrsynth.checkpoint import LoadedModel, ModelInfo
from mrsynth.errors import MRSynthError
from mrsynth.reparam_data import Anatomy, CropSimulator, parameter_declaration, tissue_signals
from mrsynth.simulate import bundled_phantom, load_spec
from mrsynth.synthesis import synthesize
from mrsynth.tissue_maps import MapParamNet, fat_component

SPEC = load_spec()
DECLARED = parameter_declaration("param")
RANGES = [[s["min"], s["max"], s["scale"]] for s in DECLARED.values()]


def _network() -> MapParamNet:
    torch.manual_seed(2)
    return MapParamNet(width=4, levels=2, ranges=RANGES, **fat_component(SPEC)).eval()


def _tissue_maps() -> tuple[torch.Tensor, list[str]]:
    """One pixel per tissue of the table (air and bone left out): its PD, fat fraction, T1 and T2."""
    names = [n for n, t in SPEC["tissues"].items() if t["PD"] > 0]
    columns = [[SPEC["tissues"][n][k] for n in names] for k in ("PD", "fat_fraction", "T1", "T2")]
    return torch.tensor(columns, dtype=torch.float64)[None, :, None, :], names


@pytest.mark.parametrize(("tr", "te"), [(1500.0, 20.0), (4500.0, 50.0), (9000.0, 500.0)])
def test_rendering_the_tables_maps_gives_the_simulators_tissue_signals(tr, te):
    maps, names = _tissue_maps()
    setting = torch.tensor([tr], dtype=torch.float64)[:, None, None, None]
    got = _network().render(maps, setting, setting * 0 + te)[0, 0, 0].numpy()
    signals = dict(zip(SPEC["tissues"], tissue_signals(tr, te, SPEC), strict=True))  # marrow is half fat
    assert np.allclose(got, [signals[n] for n in names], rtol=1e-5)


def test_the_target_setting_is_unscaled_from_the_conditions_and_the_input_setting_feeds_the_network():
    network = _network()
    x = torch.rand(2, 1, 16, 16)
    values = {"input_TR": 2000.0, "input_TE": 20.0, "TR": 6000.0, "TE": 120.0}
    conditions = torch.tensor([condition_vector(DECLARED, values)] * 2)
    tr, te = network.settings(conditions, 2)
    assert torch.allclose(tr.flatten(), torch.tensor([6000.0] * 2)) and torch.allclose(
        te.flatten(), torch.tensor([120.0] * 2)
    )
    with torch.no_grad():
        out = network(x, conditions)
        maps = network.maps(x, conditions[:, :2])
        assert torch.allclose(out, network.render(maps, tr, te))
        other_target = conditions.clone()
        other_target[:, 2:] = 0.5
        assert torch.equal(network.maps(x, other_target[:, :2]), maps)  # the maps do not depend on the target
        other_input = conditions.clone()
        other_input[:, :2] = 0.9
        assert not torch.allclose(network.maps(x, other_input[:, :2]), maps)
    assert (maps[:, 1] >= 0).all() and (maps[:, 1] <= 1).all() and (maps[:, 0] > 0).all()
    with pytest.raises(MRSynthError, match="four conditions"):
        MapParamNet(conditions=2)


def test_synthesize_brings_a_map_models_output_to_its_own_99th_percentile():
    network = _network()
    info = ModelInfo(
        name="tiny-maps",
        architecture="MapParamNet",
        arguments={"width": 4, "levels": 2, "ranges": RANGES},
        inputs=["spin echo"],
        output="spin echo at TR/TE",
        voxel_size=[1.0, 1.0, 1.0],
        patch=[4, 16, 16],
        stride=[4, 8, 8],
        approach="re-parameterisation",
        task="re-parameterisation",
        parameters=DECLARED,
        normalisation={"method": "p99", "output": "p99"},
    )
    array = np.zeros((4, 24, 20), dtype=np.float32)
    array[:, 4:20, 3:17] = 1.0 + np.random.default_rng(3).random((4, 16, 14), dtype=np.float32)
    values = {"input_TR": 4500.0, "input_TE": 50.0, "TR": 2000.0, "TE": 80.0}
    results = [
        synthesize(LoadedModel(network, info), [sitk.GetImageFromArray(array * a)], parameters=values, device="cpu")
        for a in (1.0, 40.0)
    ]
    outputs = [sitk.GetArrayFromImage(r.hr) for r in results]
    mask = sitk.GetArrayFromImage(results[0].mask) > 0
    assert np.percentile(outputs[0][mask], 99) == pytest.approx(1.0, rel=1e-5)
    assert np.allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)


def test_map_training_targets_keep_the_inputs_units_and_include_the_inputs_own_setting():
    phantom = sitk.RegionOfInterest(bundled_phantom(), (176, 128, 12), (20, 26, 80))
    simulator = CropSimulator(Anatomy.from_labels("brainweb", phantom, "brainweb"), SPEC)
    crops = [(3, 0, 0), (5, 37, 51)]
    source, target = {"TR": 2000.0, "TE": 20.0}, {"TR": 6000.0, "TE": 500.0}
    x, ys = simulator.renders(source, [target, source], crops, 40, np.random.default_rng(0), units="input")
    assert ys.shape == (2, 2, 40, 40)
    bright = ys[:, 1] > 0.3
    assert 0.8 / 30 < np.std((x - ys[:, 1])[bright]) < 1.2 / 30  # the input is its own clean setting plus noise
    # in the input's units, the target keeps its brightness relative to the input: the ratio of the settings
    own_x, own_y = simulator.pairs(source, target, crops, 40, np.random.default_rng(0))
    assert np.allclose(own_x, x)
    ratio = ys[:, 0][own_y > 0.3] / own_y[own_y > 0.3]
    assert ratio.std() < 1e-5 * ratio.mean() and ratio.mean() < 0.5  # TE 500 ms is darker than TE 20 ms
    with pytest.raises(MRSynthError, match="unknown target units"):
        simulator.renders(source, [target], crops, 40, np.random.default_rng(0), units="target")


def test_a_short_map_training_run_gives_a_model_synthesize_runs(shared_data, tmp_path):
    from mrsynth.checkpoint import load_checkpoint
    from mrsynth.reparam_training import REPARAM_DEFAULTS, train_reparam
    from mrsynth.training import load_config

    labels = str(shared_data / "synthseg_labels" / "training_seg_01.nii.gz")
    overrides = {
        "variant": "param",
        "data": {"train": [labels], "val": [labels], "slices": 4},
        "model": {"architecture": "MapParamNet", "width": 4, "levels": 2},
        "crop": 32,
        "batch_size": 4,
        "draws": 2,
        "iterations": 2,
        "val_patches": 4,
        "threads": 1,
        "loss": "relative_mse",
        "map_weight": 1.0,  # the maps' own error enters the loss too
    }
    path = train_reparam(load_config(None, overrides, REPARAM_DEFAULTS), tmp_path / "run")
    losses = [float(row.split(",")[1]) for row in (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]]
    assert len(losses) == 2 and np.isfinite(losses).all()
    model = load_checkpoint(path)
    assert model.info.architecture == "MapParamNet" and model.info.normalisation["output"] == "p99"
    assert model.network.fat_t1 == SPEC["fat_component"]["T1"]
    array = np.zeros((4, 24, 20), dtype=np.float32)
    array[:, 4:20, 3:17] = 1.0
    values = {"input_TR": 4500, "input_TE": 50, "TR": 2000, "TE": 80}
    result = synthesize(model, [sitk.GetImageFromArray(array)], parameters=values, device="cpu")
    assert np.isfinite(sitk.GetArrayFromImage(result.hr)).all()
    with pytest.raises(MRSynthError, match="set variant: param and loss: relative_mse"):
        train_reparam(load_config(None, overrides | {"loss": "mse"}, REPARAM_DEFAULTS), tmp_path / "run2")


def test_map_targets_are_each_voxels_tissue_and_the_map_error_is_zero_only_for_them():
    from mrsynth.reparam_training import map_error
    from mrsynth.simulate import tissue_names

    phantom = sitk.RegionOfInterest(bundled_phantom(), (176, 128, 12), (20, 26, 80))
    simulator = CropSimulator(Anatomy.from_labels("brainweb", phantom, "brainweb"), SPEC)
    crops = [(3, 0, 0), (5, 37, 51)]
    source = {"TR": 4500.0, "TE": 50.0}
    x, ys = simulator.renders(source, [source], crops, 40, np.random.default_rng(0), units="input", maps=True)
    assert ys.shape == (2, 5, 40, 40)
    names = tissue_names(SPEC)
    tissues = simulator.anatomy.tissues[3, :40, :40]
    csf = tissues == names.index("csf")
    assert csf.any() and np.allclose(ys[0, 3][csf], 2569.0) and np.allclose(ys[0, 4][csf], 329.0)
    # PD in the input's units: PD times the signal equation at the input's setting is the clean input
    rendered = _network().render(torch.from_numpy(ys[:, 1:]), torch.tensor(4500.0), torch.tensor(50.0))
    deep = ndimage.binary_erosion(csf, iterations=3)  # away from partial volume: the tissue's own signal
    assert np.allclose(rendered[0, 0].numpy()[deep], ys[0, 0][deep], rtol=1e-4)
    true = torch.from_numpy(ys[:, 1:])
    assert map_error(true, true).item() == pytest.approx(0.0, abs=1e-6)
    longer = true.clone()
    longer[:, 3] *= 2.0  # every T2 doubled: log error ln 2 per tissue voxel
    assert map_error(longer, true).item() == pytest.approx(np.log(2.0) ** 2, rel=1e-5)
    air = true.clone()
    air[:, 2:][true[:, :1].expand(-1, 2, -1, -1) == 0] = 5.0  # T1, T2 where there is no signal do not count
    assert map_error(air, true).item() == pytest.approx(0.0, abs=1e-6)
    guess = torch.full_like(true, 1e3).requires_grad_()  # outside the tissue its gradient is zero, not NaN
    map_error(guess, true).backward()
    assert torch.isfinite(guess.grad).all() and (guess.grad[:, 2:][true[:, :1].expand(-1, 2, -1, -1) == 0] == 0).all()
