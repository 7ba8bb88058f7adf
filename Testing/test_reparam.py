"""Re-parameterisation on TR/TE (paper 001): Param-Net conditioning, simulator data, parameters in
synthesize and the registry."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from mrsynth.acquisition import check_values, condition_vector, parse_assignments, scaled
from mrsynth.checkpoint import LoadedModel, ModelInfo
from mrsynth.cli import main
from mrsynth.errors import MRSynthError
from mrsynth.models.registry import parse_registry
from mrsynth.paramnet import BoundParamNet, ParamNet
from mrsynth.reparam_data import (
    DEFAULT_INPUT,
    TE_RANGE,
    TR_RANGE,
    Anatomy,
    CropSimulator,
    acquire,
    noise_free,
    parameter_declaration,
    sample_near,
    sample_parameters,
    shuffled_tissues,
    tissue_signals,
)
from mrsynth.reparam_training import ReparamSampler
from mrsynth.simulate import bundled_phantom, load_spec, tissue_names
from mrsynth.synthesis import synthesize
from mrsynth.volume_io import to_paper

SPEC = load_spec()


def _block_inputs(network: ParamNet, x: torch.Tensor, conditions: torch.Tensor) -> list[torch.Tensor]:
    """What the first convolution after the condition stacking sees, in every block."""
    seen: list[torch.Tensor] = []
    hooks = [b.refine.register_forward_pre_hook(lambda _, args: seen.append(args[0])) for b in network.blocks]
    try:
        network(x, conditions)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


@pytest.mark.parametrize("variant", ["default", "param"])
def test_every_block_gets_constant_channels_holding_the_scaled_parameters(variant):
    declared = parameter_declaration(variant)
    network = ParamNet(conditions=len(declared), width=4, levels=3).eval()
    values = {"TR": 2000.0, "TE": 80.0, "input_TR": 4500.0, "input_TE": 50.0}
    conditions = torch.tensor([condition_vector(declared, values)] * 2)
    seen = _block_inputs(network, torch.rand(2, 1, 32, 32), conditions)
    assert len(seen) == network.levels == 3
    for features in seen:
        planes = features[:, -len(declared) :]
        expected = conditions[:, :, None, None].expand_as(planes)
        assert torch.equal(planes, expected)
    if variant == "param":  # the input's TR/TE first, then the output's
        assert [round(v, 6) for v in conditions[0].tolist()] == [
            round(scaled(4500, declared["input_TR"]), 6),
            round(scaled(50, declared["input_TE"]), 6),
            round(scaled(2000, declared["TR"]), 6),
            round(scaled(80, declared["TE"]), 6),
        ]


def test_the_output_changes_with_tr_and_te_and_keeps_the_volume_shape():
    torch.manual_seed(0)
    network = ParamNet(conditions=2, width=4, levels=3).eval()
    volume = torch.rand(1, 1, 3, 37, 29)  # sizes that are not multiples of 8: padded and cropped back
    with torch.no_grad():
        short = BoundParamNet(network, [0.1, 0.1])(volume)
        long = BoundParamNet(network, [0.9, 0.9])(volume)
        again = BoundParamNet(network, [0.1, 0.1], chunk=1)(volume)
    assert short.shape == volume.shape
    assert (short - long).abs().mean() > 1e-3
    assert torch.allclose(short, again, atol=1e-6)  # slices are independent of how they are chunked


def test_input_skip_starts_as_the_plain_network_and_adds_the_input_times_its_gain():
    torch.manual_seed(0)
    plain = ParamNet(conditions=2, width=4, levels=2).eval()
    skipped = ParamNet(conditions=2, width=4, levels=2, input_skip=True).eval()
    missing = skipped.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(key.startswith("skip.") for key in missing)
    x, conditions = torch.rand(2, 1, 16, 16), torch.tensor([[0.2, 0.3], [0.8, 0.9]])
    with torch.no_grad():
        assert torch.equal(skipped(x, conditions), plain(x, conditions))  # the gain starts at zero
        skipped.skip[-1].bias.fill_(0.5)
        assert torch.allclose(skipped(x, conditions), plain(x, conditions) + 0.5 * x, atol=1e-6)
        skipped.skip[-1].weight.normal_()  # a gain that depends on the conditions: one per image
        gain = skipped.skip(conditions)[:, :, None, None]
        assert not torch.allclose(gain[0], gain[1])
        assert torch.allclose(skipped(x, conditions), plain(x, conditions) + gain * x, atol=1e-6)
    with pytest.raises(MRSynthError, match="needs as many input as output channels, not 2 and 1"):
        ParamNet(in_channels=2, conditions=2, input_skip=True)


def test_spin_echo_signal_of_csf_and_of_fat():
    names = tissue_names(SPEC)
    csf, fat = SPEC["tissues"]["csf"], SPEC["fat_component"]
    signals = tissue_signals(3000.0, 100.0, SPEC)
    expected_csf = csf["PD"] * (1 - math.exp(-3000 / csf["T1"])) * math.exp(-100 / csf["T2"])
    expected_fat = SPEC["tissues"]["fat"]["PD"] * (1 - math.exp(-3000 / fat["T1"])) * math.exp(-100 / fat["T2"])
    assert signals[names.index("csf")] == pytest.approx(expected_csf, rel=1e-6)
    assert signals[names.index("fat")] == pytest.approx(expected_fat, rel=1e-6)
    assert signals[names.index("air")] == 0.0


def test_parameters_are_drawn_in_range_with_te_toward_short_values():
    rng = np.random.default_rng(0)
    draws = [sample_parameters(rng) for _ in range(4000)]
    tr, te = np.array([d["TR"] for d in draws]), np.array([d["TE"] for d in draws])
    assert TR_RANGE[0] <= tr.min() and tr.max() <= TR_RANGE[1] and TE_RANGE[0] <= te.min() and te.max() <= TE_RANGE[1]
    assert abs(np.median(tr) - sum(TR_RANGE) / 2) < 400  # uniform TR
    assert abs(np.median(te) - math.sqrt(TE_RANGE[0] * TE_RANGE[1])) < 15  # log-uniform TE: median 141 ms
    assert np.mean(te < 100) > 0.35  # a linear draw would give 8 %


def test_tr_can_be_drawn_log_uniformly_and_an_unknown_scale_is_refused():
    rng = np.random.default_rng(0)
    tr = np.array([sample_parameters(rng, "log")["TR"] for _ in range(4000)])
    assert TR_RANGE[0] <= tr.min() and tr.max() <= TR_RANGE[1]
    assert abs(np.median(tr) - math.sqrt(TR_RANGE[0] * TR_RANGE[1])) < 150  # 3464 ms
    assert np.mean(tr < 2500) > 0.3  # a uniform draw gives 15 %
    with pytest.raises(MRSynthError, match="unknown TR sampling scale 'cubic'"):
        sample_parameters(rng, "cubic")


def test_near_targets_stay_in_range_around_the_input_and_a_bad_fraction_is_refused():
    rng = np.random.default_rng(0)
    near = [sample_near(rng, DEFAULT_INPUT) for _ in range(4000)]
    ratio = np.log([[n["TR"] / DEFAULT_INPUT["TR"], n["TE"] / DEFAULT_INPUT["TE"]] for n in near])
    assert np.all(np.abs(np.median(ratio, axis=0)) < 0.03)
    assert np.all(np.abs(np.mean(np.abs(ratio) < math.log(1.5), axis=0) - 0.69) < 0.03)  # P(|N(0, 0.4)| < 0.405)
    edge = [sample_near(rng, {"TR": TR_RANGE[1], "TE": TE_RANGE[0]}) for _ in range(200)]
    assert all(e["TR"] <= TR_RANGE[1] and e["TE"] >= TE_RANGE[0] for e in edge)
    assert np.mean([e["TR"] == TR_RANGE[1] for e in edge]) > 0.4  # the half drawn beyond the range is clipped
    anatomy, declared = _phantom_simulator().anatomy, parameter_declaration("default")
    config = {"variant": "default", "crop": 32, "draws": 4, "batch_size": 4, "tr_scale": "log", "near_input": 1.0}
    conditions = np.concatenate([ReparamSampler([anatomy], config, rng).draw(4)[2] for _ in range(5)])
    te_input = scaled(DEFAULT_INPUT["TE"], declared["TE"])
    assert np.all(np.abs(conditions[:, 1] - te_input) < 0.4)  # 20 targets, each within a factor 4.8 (3.9 sigma)
    with pytest.raises(MRSynthError, match="near_input is a fraction of the draws, from 0 to 1, not 1.5"):
        ReparamSampler([anatomy], config | {"near_input": 1.5}, rng)


def _phantom_simulator() -> CropSimulator:
    phantom = sitk.RegionOfInterest(bundled_phantom(), (176, 128, 12), (20, 26, 80))
    return CropSimulator(Anatomy.from_labels("brainweb", phantom, "brainweb"), SPEC)


def test_training_crops_are_the_whole_stack_simulation_there_in_units_of_its_99th_percentile():
    simulator = _phantom_simulator()
    anatomy, psf = simulator.anatomy, simulator.psf
    _, ap, lr = anatomy.head.shape
    crops = [(3, 0, 0), (7, ap - 40, lr - 40), (5, 37, 51)]  # two at the slice's borders, one inside
    rng = np.random.default_rng(0)
    target = {"TR": 2000.0, "TE": 120.0}
    x, y = simulator.pairs(DEFAULT_INPUT, target, crops, 40, rng)
    whole = noise_free(anatomy.tissues, tissue_signals(target["TR"], target["TE"], SPEC), psf)
    p99 = np.percentile(whole[anatomy.head], 99)
    for crop, got in zip(crops, y, strict=True):
        s, a, b = crop
        expected = whole[s, a : a + 40, b : b + 40] / p99
        assert np.abs(got - expected).max() < 0.01 * expected.max()  # the sampled p99 is within 1 %
        ratio = got[expected > 0.05] / expected[expected > 0.05]
        assert ratio.std() < 1e-5  # the same image up to that scale: the crop's blur is exact
    # the same setting: the input is the target plus Rician noise of sigma = p99 / 30
    x, y = simulator.pairs(DEFAULT_INPUT, DEFAULT_INPUT, crops, 40, rng)
    bright = y > 0.3
    assert 0.8 / 30 < np.std((x - y)[bright]) < 1.2 / 30
    # a nearly black input (TE 1 s) is brought to the same units as any other
    dark, _ = simulator.pairs({"TR": 4500.0, "TE": 1000.0}, DEFAULT_INPUT, crops, 40, rng)
    assert 0.2 < dark.max() < 3.0


def test_crop_sampler_keeps_the_crops_inside_the_slices_and_on_the_head():
    simulator = _phantom_simulator()
    crops = simulator.random_crops(32, 200, np.random.default_rng(1))
    _, ap, lr = simulator.anatomy.head.shape
    for s, a, b in crops:
        assert 0 <= a <= ap - 32 and 0 <= b <= lr - 32
        assert simulator.anatomy.head[s, a : a + 32, b : b + 32].any()
    with pytest.raises(MRSynthError, match="smaller than the crop"):
        simulator.random_crops(max(ap, lr) + 1, 1, np.random.default_rng(1))


def test_param_assignments_parse_and_refuse_bad_text():
    assert parse_assignments(["TR=2000", "TE = 80"]) == {"TR": 2000.0, "TE": 80.0}
    for bad, words in [(["TR"], "NAME=VALUE"), (["TR=fast"], "not a number"), (["TR=1", "TR=2"], "twice")]:
        with pytest.raises(MRSynthError, match=words):
            parse_assignments(bad)


def test_parameter_values_are_checked_against_the_declaration():
    declared = parameter_declaration("default")
    assert check_values("m", declared, {"TE": 80, "TR": 2000}) == {"TR": 2000.0, "TE": 80.0}
    with pytest.raises(MRSynthError, match="no parameter TI"):
        check_values("m", declared, {"TR": 2000, "TE": 80, "TI": 900})
    with pytest.raises(MRSynthError, match="needs TE"):
        check_values("m", declared, {"TR": 2000})
    with pytest.raises(MRSynthError, match="outside the range"):
        check_values("m", declared, {"TR": 500, "TE": 80})
    with pytest.raises(MRSynthError, match="takes no acquisition parameters"):
        check_values("m", None, {"TR": 2000})
    assert scaled(20, declared["TE"]) == 0.0 and scaled(1000, declared["TE"]) == pytest.approx(1.0)


def _tiny_model(variant: str = "default") -> LoadedModel:
    torch.manual_seed(1)
    declared = parameter_declaration(variant)
    network = ParamNet(conditions=len(declared), width=4, levels=2).eval()
    info = ModelInfo(
        name="tiny-reparam",
        architecture="ParamNet",
        arguments={"conditions": len(declared), "width": 4, "levels": 2},
        inputs=["spin echo"],
        output="spin echo at TR/TE",
        voxel_size=[1.0, 1.0, 1.0],
        patch=[4, 16, 16],
        stride=[4, 8, 8],
        approach="re-parameterisation",
        task="re-parameterisation",
        parameters=declared,
    )
    return LoadedModel(network=network, info=info)


def _head_image(scale: float = 1.0, offset: float = 0.0) -> sitk.Image:
    rng = np.random.default_rng(3)
    array = np.zeros((4, 24, 20), dtype=np.float32)
    array[:, 4:20, 3:17] = 1.0 + rng.random((4, 16, 14), dtype=np.float32)
    return sitk.GetImageFromArray(array * scale + offset)


def test_synthesize_needs_the_parameters_and_ignores_the_input_scale():
    model = _tiny_model()
    values = {"TR": 2000.0, "TE": 80.0}
    one = sitk.GetArrayFromImage(synthesize(model, [_head_image()], parameters=values, device="cpu").hr)
    ten = sitk.GetArrayFromImage(synthesize(model, [_head_image(10.0)], parameters=values, device="cpu").hr)
    assert np.allclose(ten, one, rtol=1e-4, atol=1e-5)  # output in units of its own 99th percentile
    with pytest.raises(MRSynthError, match="needs TR, TE"):
        synthesize(model, [_head_image()], device="cpu")


def test_synthesize_command_reports_parameter_errors(tmp_path, capsys):
    model = _tiny_model("param")
    from mrsynth.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "tiny.pt", model.network, model.info)
    sitk.WriteImage(_head_image(), str(tmp_path / "in.nii.gz"))
    base = ["synthesize", str(path), str(tmp_path / "in.nii.gz"), "--output", str(tmp_path / "out.nii.gz")]
    cases = [
        (["--param", "TR=2000", "--param", "TE=80"], "needs input_TR, input_TE"),
        (["--param", "TR=2000", "--param", "TE=80", "--param", "input_TR=4500", "--param", "input_TE=5"], "outside"),
        (["--param", "TX=1"], "no parameter TX"),
    ]
    for extra, words in cases:
        assert main(base + extra) == 2
        assert words in capsys.readouterr().err
    assert not (tmp_path / "out.nii.gz").exists()
    good = ["--param", "TR=2000", "--param", "TE=80", "--param", "input_TR=4500", "--param", "input_TE=50"]
    assert main(base + good) == 0
    assert sitk.ReadImage(str(tmp_path / "out.nii.gz")).GetSize() == (20, 24, 4)


def test_registry_validates_parameter_declarations(tmp_path):
    entry = {
        "name": "x",
        "version": "1",
        "task": "re-parameterisation",
        "inputs": ["a"],
        "output": "b",
        "voxel_size": [1, 1, 1],
        "orientation": "any",
        "patch": [16, 128, 128],
        "stride": [16, 64, 64],
        "mode": "fast",
        "file": "x.pt",
        "sha256": "0" * 64,
        "size": 1,
        "licence": "Apache-2.0",
        "card_text": "x",
        "parameters": parameter_declaration("param"),
    }
    parsed = parse_registry({"schema_version": 2, "models": [entry]}, tmp_path, "test")
    assert list(parsed["x"].parameters) == ["input_TR", "input_TE", "TR", "TE"]
    bad = [
        {"TR": {"unit": "ms", "min": 10, "max": 5}},
        {"TR": {"min": 1, "max": 5}},
        {"TE": {"unit": "ms", "min": 0, "max": 5, "scale": "log"}},
        {"TE": {"unit": "ms", "min": 1, "max": 5, "colour": "red"}},
    ]
    for parameters in bad:
        with pytest.raises(MRSynthError, match="parameters"):
            parse_registry({"schema_version": 2, "models": [dict(entry, parameters=parameters)]}, tmp_path, "test")
    json.dumps(parsed["x"].to_dict())  # the entry stays plain JSON


def test_the_panel_gets_a_field_per_parameter_within_the_trained_range():
    from MRSynthSlicerLib.models import ModelChoice, parameter_fields

    choice = ModelChoice("m", ["a"], "b", [1, 1, 1], "card", "bundled", None, parameter_declaration("param"))
    fields = parameter_fields(choice)
    assert [f.name for f in fields] == ["input_TR", "input_TE", "TR", "TE"]
    te = fields[3]
    assert (te.minimum, te.maximum, te.unit) == (20.0, 1000.0, "ms")
    assert te.minimum < te.default < te.maximum and te.default == round(math.sqrt(20 * 1000))
    plain = ModelChoice("n", ["a"], "b", [1, 1, 1], "card", "bundled", None)
    assert parameter_fields(plain) == []


def _tiny_run(labels: str) -> dict:
    """Overrides for a quick training run on one SynthSeg subject: 4 slices, a 2-level network of width 4."""
    data = {"train": [labels], "val": [], "slices": 4}
    return {"data": data, "model": {"width": 4, "levels": 2}, "crop": 32, "batch_size": 4, "draws": 2, "threads": 1}


def test_training_run_writes_a_conditioned_model_that_synthesize_accepts(shared_data, tmp_path):
    from mrsynth.checkpoint import load_checkpoint
    from mrsynth.reparam_training import REPARAM_DEFAULTS, train_reparam
    from mrsynth.training import load_config

    labels = str(shared_data / "synthseg_labels" / "training_seg_01.nii.gz")
    overrides = _tiny_run(labels) | {"variant": "param", "iterations": 2, "loss": "relative_mse", "tr_encoding": "log"}
    path = train_reparam(load_config(None, overrides, REPARAM_DEFAULTS), tmp_path / "run")
    model = load_checkpoint(path)
    assert list(model.info.parameters) == ["input_TR", "input_TE", "TR", "TE"]
    assert model.info.parameters["TR"]["scale"] == "log" and model.info.parameters["input_TR"]["scale"] == "linear"
    assert model.info.training["train_cases"] == [labels] and model.info.training["iterations"] == 2
    values = {"input_TR": 4500, "input_TE": 50, "TR": 2000, "TE": 80}
    result = synthesize(model, [_head_image()], parameters=values, device="cpu")
    assert result.hr.GetSize() == (20, 24, 4)


def test_the_training_loss_adds_the_transfer_error_of_renderings_at_the_target_and_the_input_setting(
    shared_data, tmp_path
):
    from mrsynth.reparam_training import REPARAM_DEFAULTS, ReparamTrainer, transfer_error
    from mrsynth.training import load_config

    overrides = _tiny_run(str(shared_data / "synthseg_labels" / "training_seg_01.nii.gz")) | {"transfer_weight": 0.5}
    trainer = ReparamTrainer(load_config(None, overrides, REPARAM_DEFAULTS), tmp_path / "run")
    x, y, k = trainer.sampler.draw(4)
    network = trainer.network.eval()
    with torch.no_grad():
        loss = float(trainer.loss(x, y, k, flip=False))
        xt, yt, kt = (torch.from_numpy(a) for a in (x, y, k))
        out, own = network(xt, kt[:, :2]), network(xt, kt[:, 2:4])
        mse = torch.nn.functional.mse_loss(out, yt[:, :1])
        expected = mse + 0.5 * transfer_error(out, own, yt[:, :1], yt[:, 1:], kt[:, 4])
    assert not np.allclose(k[:, :2], k[:, 2:4])  # the second rendering is at another setting
    assert loss == pytest.approx(float(expected), rel=1e-5) and loss > float(mse)


def test_a_run_with_input_skip_starts_from_a_plain_param_net(shared_data, tmp_path):
    from mrsynth.checkpoint import load_checkpoint
    from mrsynth.reparam_training import REPARAM_DEFAULTS, train_reparam
    from mrsynth.training import load_config

    labels = str(shared_data / "synthseg_labels" / "training_seg_01.nii.gz")
    base = {"variant": "param", "data": {"train": [labels], "val": [], "slices": 4}, "crop": 32, "batch_size": 4,
            "draws": 2, "iterations": 1, "threads": 1, "loss": "relative_mse"}  # fmt: skip
    plain = base | {"model": {"width": 4, "levels": 2}}
    source = train_reparam(load_config(None, plain, REPARAM_DEFAULTS), tmp_path / "a")
    overrides = base | {"model": {"width": 4, "levels": 2, "input_skip": True}, "init_weights": str(source),
                        "learning_rate": 0.0}  # fmt: skip
    model = load_checkpoint(train_reparam(load_config(None, overrides, REPARAM_DEFAULTS), tmp_path / "b"))
    assert model.info.arguments["input_skip"] is True
    before = load_checkpoint(source).network.state_dict()
    after = model.network.state_dict()
    assert set(after) - set(before) == {"skip.0.weight", "skip.0.bias", "skip.2.weight", "skip.2.bias"}
    convolutions = [k for k in before if k.endswith("weight") and after[k].dim() == 4]
    assert convolutions and all(torch.equal(before[k], after[k]) for k in convolutions)  # rate 0: unchanged
    assert not after["skip.2.weight"].any() and not after["skip.2.bias"].any()
    maps = base | {"model": {"architecture": "MapParamNet", "width": 4, "levels": 2, "input_skip": True}}
    with pytest.raises(MRSynthError, match="input_skip is an option of ParamNet"):
        train_reparam(load_config(None, maps, REPARAM_DEFAULTS), tmp_path / "c")


def test_draw_groups_follow_the_conditioning_values_of_each_draw():
    from mrsynth.reparam_training import draw_groups

    draws = np.array([[0.1, 0.2], [0.5, 0.5], [0.1, 0.3]], dtype=np.float32)
    groups = draw_groups(np.repeat(draws, 3, axis=0))
    assert groups.tolist() == [0, 0, 0, 2, 2, 2, 1, 1, 1]


def test_relative_mse_is_one_for_the_best_linear_map_and_weighs_every_draw_alike():
    from mrsynth.reparam_training import relative_mse

    rng = np.random.default_rng(0)
    source = torch.from_numpy(rng.random((4, 1, 8, 8)))
    target = torch.from_numpy(rng.random((4, 1, 8, 8)))
    groups = torch.tensor([0, 0, 1, 1])
    fitted = torch.empty_like(source)
    for g in (0, 1):  # the least-squares map a x + b of each draw, fitted over both of its crops
        x, y = source[groups == g].flatten().numpy(), target[groups == g].flatten().numpy()
        a, b = np.polyfit(x, y, 1)
        fitted[groups == g] = a * source[groups == g] + b
    assert float(relative_mse(fitted, target, source, groups)) == pytest.approx(1.0, rel=1e-9)
    assert float(relative_mse(target, target, source, groups)) == 0.0
    # a draw's scale does not change its weight: ten times larger errors in one draw with ten times
    # larger images leave the loss as it was, where plain MSE would be ruled by that draw
    worse = target + 0.1
    scale = torch.where(groups[:, None, None, None] == 1, 10.0, 1.0).to(source.dtype)
    plain = relative_mse(worse, target, source, groups)
    scaled_draw = relative_mse(worse * scale, target * scale, source * scale, groups)
    assert float(scaled_draw) == pytest.approx(float(plain), rel=1e-9)
    mse = torch.nn.functional.mse_loss
    assert float(mse(worse * scale, target * scale)) > 50 * float(mse(worse, target))


def test_an_unknown_reparameterisation_loss_is_refused(shared_data, tmp_path):
    from mrsynth.reparam_training import REPARAM_DEFAULTS, train_reparam
    from mrsynth.training import load_config

    labels = str(shared_data / "synthseg_labels" / "training_seg_01.nii.gz")
    overrides = {"data": {"train": [labels], "val": [], "slices": 4}, "loss": "l1", "iterations": 1}
    with pytest.raises(MRSynthError, match="unknown re-parameterisation loss 'l1': use mse or relative_mse"):
        train_reparam(load_config(None, overrides, REPARAM_DEFAULTS), tmp_path / "run")


@pytest.mark.parametrize("name", ["reparam-default-sim", "reparam-param-sim"])
def test_bundled_models_declare_their_checkpoints_parameters_and_run(name, tmp_path):
    from mrsynth.models import load_model, registry

    entry = registry()[name]
    model = load_model(name)
    assert entry.parameters == model.info.parameters and entry.task == "contrast-synthesis"
    values = {n: spec["min"] for n, spec in entry.parameters.items()}
    sitk.WriteImage(_head_image(), str(tmp_path / "in.nii.gz"))
    args = ["synthesize", name, str(tmp_path / "in.nii.gz"), "--output", str(tmp_path / "out.nii.gz")]
    args += [item for n, v in values.items() for item in ("--param", f"{n}={v:g}")]
    assert main(args) == 0
    out = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out.nii.gz")))
    assert out.shape == (4, 24, 20) and np.isfinite(out).all()


def test_bundled_default_to_param_beats_the_rescaled_input_on_the_held_out_phantom():
    """At the corners of the evaluation grid (TR 1.5 / 9 s x TE 20 / 500 ms), on 8 slices of the BrainWeb
    phantom that no training saw, the bundled Default-to-Param model is closer to the noise-free truth than
    the input under the best global linear map fitted on that truth (scripts/eval_reparam.py at full size)."""
    from mrsynth.masks import normalise_p99
    from mrsynth.metrics import psnr
    from mrsynth.models import load_model

    spec = load_spec()
    psf = float(spec["acquisition"]["psf_sigma_voxels"])
    anatomy = Anatomy.from_labels("brainweb", bundled_phantom(), "brainweb", slices=8)
    head = anatomy.head
    x = acquire(noise_free(anatomy.tissues, tissue_signals(4500.0, 50.0, spec), psf), head, np.random.default_rng(1))
    model = load_model("reparam-default-sim")
    gains = []
    for tr, te in ((1500.0, 20.0), (1500.0, 500.0), (9000.0, 20.0), (9000.0, 500.0)):
        truth = normalise_p99(noise_free(anatomy.tissues, tissue_signals(tr, te, spec), psf), head)[0]
        a, b = np.polyfit(x[head].astype(np.float64), truth[head].astype(np.float64), 1)
        image = sitk.GetImageFromArray(np.ascontiguousarray(x, dtype=np.float32))
        out = sitk.GetArrayFromImage(synthesize(model, [image], parameters={"TR": tr, "TE": te}, device="cpu").hr)
        gains.append(psnr(out, truth, head) - psnr((a * x + b).astype(np.float32), truth, head))
    assert np.mean(gains) > 3.0, gains


def test_bundled_param_to_param_beats_the_rescaled_input_from_other_inputs_on_the_held_out_phantom():
    """From a PD-weighted (TR 2 s / TE 20 ms) and a T2-weighted (TR 8 s / TE 120 ms) input, on 8 slices of
    the BrainWeb phantom, the bundled chained Param-to-Param model with its residual transfer is closer to
    the truth than its input under the best global linear map, at settings away from the input's contrast
    (scripts/eval_reparam.py at full size; version 5 lost from the PD-weighted input)."""
    from mrsynth.masks import normalise_p99
    from mrsynth.metrics import psnr
    from mrsynth.models import load_model

    spec = load_spec()
    psf = float(spec["acquisition"]["psf_sigma_voxels"])
    anatomy = Anatomy.from_labels("brainweb", bundled_phantom(), "brainweb", slices=8)
    head = anatomy.head
    model = load_model("reparam-param-sim")
    assert model.info.normalisation["residual_transfer_form"] == "shrink"
    cases = {(2000.0, 20.0): ((9000.0, 20.0), (6000.0, 200.0)), (8000.0, 120.0): ((1500.0, 20.0), (3000.0, 500.0))}
    gains = []
    for (input_tr, input_te), targets in cases.items():
        clean = noise_free(anatomy.tissues, tissue_signals(input_tr, input_te, spec), psf)
        x = acquire(clean, head, np.random.default_rng(1))
        image = sitk.GetImageFromArray(np.ascontiguousarray(x, dtype=np.float32))
        for tr, te in targets:
            truth = normalise_p99(noise_free(anatomy.tissues, tissue_signals(tr, te, spec), psf), head)[0]
            a, b = np.polyfit(x[head].astype(np.float64), truth[head].astype(np.float64), 1)
            values = {"input_TR": input_tr, "input_TE": input_te, "TR": tr, "TE": te}
            out = sitk.GetArrayFromImage(synthesize(model, [image], parameters=values, device="cpu").hr)
            gains.append(psnr(out, truth, head) - psnr((a * x + b).astype(np.float32), truth, head))
    assert min(gains) > 0.5, gains


def test_a_fixed_target_setting_trains_param_to_one_output_and_is_checked():
    anatomy, declared = _phantom_simulator().anatomy, parameter_declaration("param")
    config = {"variant": "param", "crop": 32, "draws": 4, "batch_size": 4, "tr_scale": "log", "near_input": 1.0,
              "target_setting": {"TR": 4500, "TE": 50}}  # fmt: skip
    rng = np.random.default_rng(5)
    conditions = np.concatenate([ReparamSampler([anatomy], config, rng).draw(4)[2] for _ in range(5)])
    fixed = [scaled(DEFAULT_INPUT["TR"], declared["TR"]), scaled(DEFAULT_INPUT["TE"], declared["TE"])]
    assert np.allclose(conditions[:, 2:], fixed)  # every target at the one setting
    te_input = conditions[:, 1]
    assert np.all(np.abs(te_input - fixed[1]) < 0.4) and np.ptp(te_input) > 0  # near_input: inputs near it
    free = config | {"near_input": 0.0}
    spread = np.concatenate([ReparamSampler([anatomy], free, rng).draw(4)[2] for _ in range(5)])
    assert np.ptp(spread[:, 1]) > 0.4 and np.allclose(spread[:, 2:], fixed)
    with pytest.raises(MRSynthError, match="set variant: param"):
        ReparamSampler([anatomy], config | {"variant": "default"}, rng)
    with pytest.raises(MRSynthError, match="TE 5 ms is outside the training range 20-1000 ms"):
        ReparamSampler([anatomy], config | {"target_setting": {"TR": 4500, "TE": 5}}, rng)
    with pytest.raises(MRSynthError, match="takes TR and TE in ms"):
        ReparamSampler([anatomy], config | {"target_setting": {"TR": 4500}}, rng)


def test_an_input_stage_feeds_default_to_param_the_first_stage_rendering_of_inputs_at_other_settings(
    tmp_path, monkeypatch
):
    from mrsynth.checkpoint import save_checkpoint

    anatomy = _phantom_simulator().anatomy
    first = _stage("param", {"variant": "param", "config": {"target_setting": {"TR": 4500, "TE": 50}}}, 2)
    save_checkpoint(tmp_path / "first.pt", first.network, first.info)
    config = {"variant": "default", "crop": 32, "draws": 4, "batch_size": 8, "tr_scale": "log", "near_input": 0.0}
    staged = config | {"input_stage": str(tmp_path / "first.pt"), "input_stage_fraction": 1.0}
    calls = []
    original = ReparamSampler._first_stage

    def recorded(self, x, source):
        out = original(self, x, source)
        calls.append((x, source, out))
        return out

    monkeypatch.setattr(ReparamSampler, "_first_stage", recorded)
    x, _, conditions = ReparamSampler([anatomy], staged, np.random.default_rng(3)).draw(8)
    assert len(calls) == 4 and any(source != DEFAULT_INPUT for _, source, _ in calls)
    assert np.array_equal(x[:, 0], np.concatenate([out for _, _, out in calls]))  # the first stage's renderings
    for crops, source, out in calls:  # each is the stage network on its crops, conditioned on their setting
        values = {"input_TR": source["TR"], "input_TE": source["TE"]} | DEFAULT_INPUT
        k = torch.tensor([condition_vector(parameter_declaration("param"), values)] * len(crops))
        with torch.no_grad():
            expected = first.network.eval()(torch.from_numpy(crops[:, None]).float(), k.float())[:, 0].numpy()
        assert np.allclose(out, expected, atol=1e-5)
    assert conditions.shape[1] == 2  # Default-to-Param's conditions: the target's TR and TE only
    near_calls = []

    def recorded_near(rng, source):
        near_calls.append((source, sample_near(rng, source)))
        return near_calls[-1][1]

    monkeypatch.setattr("mrsynth.reparam_training.sample_near", recorded_near)
    calls.clear()
    _, _, conditions = ReparamSampler([anatomy], staged | {"near_input": 1.0}, np.random.default_rng(4)).draw(8)
    targets = [t for s, t in near_calls if s != DEFAULT_INPUT]  # near_input: each target near the input's own setting
    assert [s for s, t in near_calls if s != DEFAULT_INPUT] == [source for _, source, _ in calls]
    declared = parameter_declaration("default")
    assert np.allclose(conditions[::2], [condition_vector(declared, t) for t in targets])
    plain = ReparamSampler([anatomy], config, np.random.default_rng(3)).draw(8)
    off = ReparamSampler([anatomy], config | {"input_stage": None}, np.random.default_rng(3)).draw(8)
    assert all(np.array_equal(a, b) for a, b in zip(plain, off, strict=True))  # off: the old draws
    rng = np.random.default_rng(0)
    with pytest.raises(MRSynthError, match="set variant: default"):
        ReparamSampler([anatomy], staged | {"variant": "param"}, rng)
    with pytest.raises(MRSynthError, match="input_stage_fraction is a fraction of the draws, in \\(0, 1\\], not 2"):
        ReparamSampler([anatomy], staged | {"input_stage_fraction": 2}, rng)
    elsewhere = _stage("param", {"variant": "param", "config": {"target_setting": {"TR": 2000, "TE": 50}}}, 2)
    save_checkpoint(tmp_path / "elsewhere.pt", elsewhere.network, elsewhere.info)
    with pytest.raises(MRSynthError, match="is not a Param-to-Param ParamNet trained to TR 4500 ms, TE 50 ms"):
        ReparamSampler([anatomy], staged | {"input_stage": str(tmp_path / "elsewhere.pt")}, rng)


def test_transfer_error_cancels_errors_the_two_renderings_share_at_each_draws_slope():
    from mrsynth.reparam_training import transfer_error

    rng = np.random.default_rng(0)
    truth_own = torch.from_numpy(rng.random((4, 1, 8, 8)))
    slopes = torch.tensor([1.0, 1.0, 2.5, 2.5], dtype=truth_own.dtype)
    slope = slopes[:, None, None, None]
    target = slope * truth_own + 0.3  # draw 0 keeps the input's contrast, draw 1 scales it by 2.5
    shared = torch.from_numpy(rng.normal(0.0, 0.1, (4, 1, 8, 8)))
    own = truth_own + shared
    # errors at the target that are the slope times the error at the input's setting: the transfer removes them
    assert float(transfer_error(target + slope * shared, own, target, truth_own, slopes)) < 1e-20
    # an exact rendering of the input's setting leaves the error at the target as it is
    assert float(transfer_error(target + shared, truth_own, target, truth_own, slopes)) == pytest.approx(
        float((shared**2).mean()), rel=1e-9
    )
    # the same error at both settings cancels only where the slope is 1 (draw 0)
    left = transfer_error(target + shared, own, target, truth_own, slopes)
    assert float(left) == pytest.approx(float(((1.0 - slope) ** 2 * shared**2).mean()), rel=1e-9)
    with pytest.raises(MRSynthError, match="transfer_error needs equal shapes"):
        transfer_error(target, own[:, :, :4], target, truth_own, slopes)


def test_transfer_weight_adds_the_input_settings_truth_and_conditioning_to_each_draw(tmp_path, monkeypatch):
    from mrsynth.acquisition import unscaled
    from mrsynth.checkpoint import save_checkpoint

    anatomy = _phantom_simulator().anatomy
    first = _stage("param", {"variant": "param", "config": {"target_setting": {"TR": 4500, "TE": 50}}}, 2)
    save_checkpoint(tmp_path / "first.pt", first.network, first.info)
    config = {
        "variant": "default",
        "crop": 32,
        "draws": 4,
        "batch_size": 8,
        "tr_scale": "log",
        "near_input": 0.5,
        "input_stage": str(tmp_path / "first.pt"),
        "input_stage_fraction": 0.5,
    }
    x, y, k = ReparamSampler([anatomy], config, np.random.default_rng(8)).draw(8)
    crops = []
    original = CropSimulator.random_crops
    monkeypatch.setattr(CropSimulator, "random_crops", lambda *a: crops.append(original(*a)) or crops[-1])
    xt, yt, kt = ReparamSampler([anatomy], config | {"transfer_weight": 1.0}, np.random.default_rng(8)).draw(8)
    assert np.array_equal(x, xt) and np.array_equal(y, yt[:, :1]) and np.array_equal(k, kt[:, :2])  # same draws
    assert yt.shape == (8, 2, 32, 32) and kt.shape == (8, 5)
    declared = parameter_declaration("default")
    simulator = CropSimulator(anatomy, SPEC)
    acquired = []
    for draw, places in enumerate(crops):  # the second truth: noise-free at the setting the input was acquired at
        settings = [
            dict(zip(("TR", "TE"), (unscaled(v, spec) for v, spec in zip(values, declared.values()))))
            for values in (kt[2 * draw, :2], kt[2 * draw, 2:4])
        ]
        acquired.append(settings[1])
        images = []
        for setting in settings:
            clean = noise_free(anatomy.tissues, tissue_signals(setting["TR"], setting["TE"], SPEC), simulator.psf)
            images.append(clean / np.percentile(clean[anatomy.head], 99))
        for i, (s, a, b) in enumerate(places):
            assert np.allclose(yt[2 * draw + i, 1], images[1][s, a : a + 32, b : b + 32], rtol=0.02, atol=0.01)
        # the slope of the two noise-free images over the whole head, from the simulator's head sample
        slope = np.polyfit(images[1][anatomy.head], images[0][anatomy.head], 1)[0]
        assert kt[2 * draw, 4] == pytest.approx(slope, rel=0.03, abs=0.01)
    assert any(abs(own["TR"] - DEFAULT_INPUT["TR"]) > 1 for own in acquired)  # first-stage draws: other settings
    assert any(abs(own["TR"] - DEFAULT_INPUT["TR"]) < 0.1 for own in acquired)  # the others: TR 4.5 s / TE 50 ms
    with pytest.raises(MRSynthError, match="transfer_weight is an option of ParamNet"):
        ReparamSampler(
            [anatomy],
            config | {"transfer_weight": 1.0, "model": {"architecture": "MapParamNet"}},
            np.random.default_rng(0),
        )


def test_an_input_region_draws_that_fraction_of_inputs_in_its_box_and_is_checked():
    anatomy, declared = _phantom_simulator().anatomy, parameter_declaration("param")
    config = {"variant": "param", "crop": 32, "draws": 4, "batch_size": 4, "tr_scale": "log", "near_input": 0.0,
              "target_setting": {"TR": 4500, "TE": 50}}  # fmt: skip
    region = {"fraction": 0.5, "TR": [1500, 2500], "TE": [20, 30]}

    def inputs(settings: dict, seed: int) -> np.ndarray:  # the scaled input TR, TE of 100 draws
        sampler = ReparamSampler([anatomy], settings, np.random.default_rng(seed))
        return np.concatenate([sampler.draw(4)[2] for _ in range(25)])[:, :2]

    def inside(c: np.ndarray) -> np.ndarray:
        tr = [scaled(v, declared["input_TR"]) for v in (1500, 2500)]
        te = [scaled(v, declared["input_TE"]) for v in (20, 30)]
        return (
            (c[:, 0] >= tr[0] - 1e-6)
            & (c[:, 0] <= tr[1] + 1e-6)
            & (c[:, 1] >= te[0] - 1e-6)
            & (c[:, 1] <= te[1] + 1e-6)
        )

    share = inside(inputs(config | {"input_region": region}, 1)).mean()
    assert 0.35 < share < 0.75  # half the draws, plus the few (about 2.5 %) that the usual draw puts there
    assert inside(inputs(config | {"input_region": region | {"fraction": 1.0}}, 1)).all()
    assert np.array_equal(inputs(config, 2), inputs(config | {"input_region": None}, 2))  # off: the old draws
    rng = np.random.default_rng(0)
    with pytest.raises(MRSynthError, match="Default-to-Param's input setting is fixed"):
        ReparamSampler([anatomy], config | {"variant": "default", "target_setting": None, "input_region": region}, rng)
    with pytest.raises(MRSynthError, match="TE \\[10, 30\\] is not an increasing range inside \\[20, 1000\\] ms"):
        ReparamSampler([anatomy], config | {"input_region": region | {"TE": [10, 30]}}, rng)
    with pytest.raises(MRSynthError, match="fraction must be in \\(0, 1\\], not 1.5"):
        ReparamSampler([anatomy], config | {"input_region": region | {"fraction": 1.5}}, rng)
    with pytest.raises(MRSynthError, match="is not {fraction: F"):
        ReparamSampler([anatomy], config | {"input_region": {"fraction": 0.5, "TR": [1500, 2500]}}, rng)


def test_extracranial_shuffle_swaps_soft_tissue_properties_in_training_draws_only():
    names = tissue_names(SPEC)
    soft = [names.index(n) for n in ("fat", "muscle", "skin", "connective")]
    rng = np.random.default_rng(3)
    orders = np.array([shuffled_tissues(rng, SPEC) for _ in range(40)])
    others = [i for i in range(len(names)) if i not in soft]
    assert np.all(orders[:, others] == others)  # brain, CSF, bone and air keep their own properties
    assert np.all(np.sort(orders[:, soft], axis=1) == sorted(soft))  # the soft tissues trade among themselves
    assert {int(o) for o in orders[:, names.index("muscle")]} == set(soft)  # muscle takes each one's, skin's too
    # rendering with an order is rendering the relabelled anatomy
    simulator = _phantom_simulator()
    anatomy = simulator.anatomy
    order = np.arange(len(names))
    order[[names.index("muscle"), names.index("skin")]] = [names.index("skin"), names.index("muscle")]
    relabelled = CropSimulator(Anatomy("relabelled", order[anatomy.tissues], anatomy.head), SPEC)
    crops = [(2, 0, 0), (6, 20, 30)]
    target = {"TR": 3000.0, "TE": 200.0}
    x, y = simulator.pairs(DEFAULT_INPUT, target, crops, 40, np.random.default_rng(9), order)
    x2, y2 = relabelled.pairs(DEFAULT_INPUT, target, crops, 40, np.random.default_rng(9))
    assert np.allclose(x, x2, atol=1e-5) and np.allclose(y, y2, atol=1e-5)
    _, plain = simulator.pairs(DEFAULT_INPUT, target, crops, 40, np.random.default_rng(9))
    assert np.abs(plain - y).max() > 0.1  # the crops hold skin and muscle, so the swap shows
    # the sampler: off replays the old draws, on changes training draws, and validation draws never change
    config = {"variant": "param", "crop": 32, "draws": 4, "batch_size": 4, "tr_scale": "log", "near_input": 0.0}

    def draw(extra: dict, augment: bool = True) -> np.ndarray:
        return ReparamSampler([anatomy], config | extra, np.random.default_rng(4), augment).draw(4)[1]

    assert np.array_equal(draw({}), draw({"extracranial_shuffle": 0.0}))
    assert not np.array_equal(draw({}), draw({"extracranial_shuffle": 1.0}))
    assert np.array_equal(draw({}), draw({"extracranial_shuffle": 1.0}, augment=False))
    with pytest.raises(MRSynthError, match="extracranial_shuffle is a fraction of the draws, from 0 to 1, not 2"):
        ReparamSampler([anatomy], config | {"extracranial_shuffle": 2}, rng)


def _stage(variant: str, training: dict, seed: int) -> LoadedModel:
    model = _tiny_model(variant)
    torch.manual_seed(seed)  # after _tiny_model, which seeds its own network
    model.network = ParamNet(conditions=len(model.info.parameters), width=4, levels=2).eval()
    model.info.training = training
    return model


def test_chained_param_to_param_runs_its_first_stage_to_the_default_setting_then_the_second(tmp_path):
    from mrsynth.checkpoint import load_checkpoint, save_checkpoint
    from mrsynth.reparam_chain import chain_models

    first = _stage("param", {"variant": "param", "config": {"target_setting": {"TR": 4500, "TE": 50}}}, 2)
    second = _stage("default", {"variant": "default"}, 3)
    network, info = chain_models(first, second, "chained", "9")
    assert info.architecture == "ChainedParamNet" and list(info.parameters) == ["input_TR", "input_TE", "TR", "TE"]
    declared = parameter_declaration("param")
    values = {"input_TR": 2000.0, "input_TE": 20.0, "TR": 9000.0, "TE": 200.0}
    c = torch.tensor([condition_vector(declared, values)])
    via = torch.tensor([[scaled(4500.0, declared["TR"]), scaled(50.0, declared["TE"])]])
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        expected = second.network(first.network(x, torch.cat([c[:, :2], via], 1)), c[:, 2:])
        assert torch.allclose(network.eval()(x, c), expected)
        save_checkpoint(tmp_path / "chained.pt", network, info)
        loaded = load_checkpoint(tmp_path / "chained.pt")
        assert torch.allclose(loaded.network(x, c), expected)
    out = synthesize(loaded, [_head_image()], parameters=values, device="cpu").hr
    assert out.GetSize() == (20, 24, 4)
    elsewhere = _stage("param", {"variant": "param", "config": {"target_setting": {"TR": 2000, "TE": 50}}}, 2)
    with pytest.raises(MRSynthError, match="the first stage ends at TR 2000 ms, TE 50 ms but the second starts"):
        chain_models(elsewhere, second, "chained", "9")
    with pytest.raises(MRSynthError, match="not a Param-to-Param ParamNet trained to one output setting"):
        chain_models(second, second, "chained", "9")
    with pytest.raises(MRSynthError, match="is not a Default-to-Param ParamNet"):
        chain_models(first, first, "chained", "9")


def test_a_chained_model_rechains_its_first_stage_with_a_new_second(tmp_path):
    from mrsynth.checkpoint import load_checkpoint, save_checkpoint
    from mrsynth.reparam_chain import chain_models, first_stage

    training = {"variant": "param", "config": {"name": "to-default", "target_setting": {"TR": 4500, "TE": 50}}}
    first = _stage("param", training, 2)
    network, info = chain_models(first, _stage("default", {"variant": "default"}, 3), "chained", "1")
    save_checkpoint(tmp_path / "chained.pt", network, info)
    kept = first_stage(load_checkpoint(tmp_path / "chained.pt"))
    assert kept.info.architecture == "ParamNet" and kept.info.name == "to-default" and kept.info.training == training
    assert first_stage(first) is first
    newer = _stage("default", {"variant": "default"}, 4)
    rechained, rinfo = chain_models(load_checkpoint(tmp_path / "chained.pt"), newer, "chained", "2")
    x = torch.rand(1, 1, 16, 16)
    c = torch.tensor(
        [condition_vector(parameter_declaration("param"), DEFAULT_INPUT | {"input_TR": 8000.0, "input_TE": 120.0})]
    )
    with torch.no_grad():
        assert torch.allclose(rechained.eval()(x, c), chain_models(first, newer, "c", "2")[0].eval()(x, c))
        assert not torch.allclose(rechained(x, c), network.eval()(x, c))  # the second stage was replaced
    assert rinfo.version == "2" and rinfo.training["first"] == training


def test_tr_can_enter_the_network_on_a_log_scale_and_a_chain_keeps_each_stage_s_scale():
    from mrsynth.reparam_chain import chain_models

    linear, log = parameter_declaration("default"), parameter_declaration("default", "log")
    assert linear["TR"]["scale"] == "linear" and log["TR"]["scale"] == "log" and log["TE"] == linear["TE"]
    assert scaled(1500.0, log["TR"]) - scaled(1200.0, log["TR"]) > 3 * (
        scaled(1500.0, linear["TR"]) - scaled(1200.0, linear["TR"])
    )
    param = parameter_declaration("param", "log")
    assert param["input_TR"]["scale"] == "linear" and param["TR"]["scale"] == "log"
    with pytest.raises(MRSynthError, match="unknown tr_encoding 'cubic'"):
        parameter_declaration("default", "cubic")
    # a log-encoded Default-to-Param behind a linear first stage: the first still gets its own scale
    first = _stage("param", {"variant": "param", "config": {"target_setting": {"TR": 4500, "TE": 50}}}, 2)
    second = _stage("default", {"variant": "default"}, 3)
    second.info.parameters = log
    network, info = chain_models(first, second, "chained", "9")
    assert info.parameters["input_TR"]["scale"] == "linear" and info.parameters["TR"]["scale"] == "log"
    values = {"input_TR": 2000.0, "input_TE": 20.0, "TR": 1500.0, "TE": 20.0}
    c = torch.tensor([condition_vector(info.parameters, values)])
    via = torch.tensor([condition_vector(linear, DEFAULT_INPUT)])
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        expected = second.network(first.network(x, torch.cat([c[:, :2], via], 1)), c[:, 2:])
        assert torch.allclose(network.eval()(x, c), expected)
    assert c[0, 2].item() == pytest.approx(math.log(1500 / 1200) / math.log(10000 / 1200))
    # rechaining that chain takes its first stage on the first stage's own (linear) scale, not the chain's
    rechained, rinfo = chain_models(LoadedModel(network, info), second, "rechained", "10")
    assert rinfo.arguments["via"] == info.arguments["via"] == condition_vector(linear, DEFAULT_INPUT)
    with torch.no_grad():
        assert torch.allclose(rechained.eval()(x, c), expected)


def test_conditions_drawn_on_one_declaration_are_rescaled_for_a_model_on_another():
    from mrsynth.acquisition import rescaled, unscaled

    linear, log = parameter_declaration("default"), parameter_declaration("default", "log")
    for spec in (*linear.values(), *log.values()):
        for value in (spec["min"], 1500.0, 4500.0, spec["max"]):
            if spec["min"] <= value <= spec["max"]:
                assert unscaled(scaled(value, spec), spec) == pytest.approx(value)
    k = np.asarray([condition_vector(linear, {"TR": tr, "TE": 20.0}) for tr in (1500.0, 9000.0)], dtype=np.float32)
    expected = [condition_vector(log, {"TR": tr, "TE": 20.0}) for tr in (1500.0, 9000.0)]
    assert np.allclose(rescaled(k, linear, log), expected, atol=1e-6)
    assert np.array_equal(rescaled(k, linear, linear), k)
    with pytest.raises(MRSynthError, match="cannot be given to a model taking input_TR"):
        rescaled(k, linear, parameter_declaration("param"))


def test_residual_transfer_adds_what_the_chain_misses_of_its_input_scaled_by_the_contrast_slope():
    from mrsynth.reparam_chain import residual_transfer

    rng = np.random.default_rng(0)
    at_input = rng.random((4, 8, 8))
    image = at_input + 0.05 * rng.standard_normal(at_input.shape)  # detail and noise the chain missed
    body = np.ones(at_input.shape, bool)
    # at the input's own contrast (slope 1) the whole residual gives the input back
    np.testing.assert_allclose(residual_transfer(at_input, at_input, image, body, 1.0), image, atol=1e-12)
    # an inverted contrast (slope -2) carries the residual inverted and scaled
    inverted = 3.0 - 2.0 * at_input
    np.testing.assert_allclose(
        residual_transfer(inverted, at_input, image, body, 0.5), inverted - 1.0 * (image - at_input), atol=1e-9
    )


def test_noise_sigma_reads_white_noise_through_smooth_anatomy_and_edges():
    from mrsynth.reparam_chain import noise_sigma

    rng = np.random.default_rng(1)
    z, y, x = np.meshgrid(*(np.arange(n) for n in (6, 64, 64)), indexing="ij")
    anatomy = np.sin(y / 9.0) + 0.5 * (x > 30)  # smooth shading and one sharp edge
    body = np.ones(anatomy.shape, bool)
    for sigma in (0.01, 0.05):
        noisy = anatomy + sigma * rng.standard_normal(anatomy.shape)
        assert noise_sigma(noisy, body) == pytest.approx(sigma, rel=0.05)
    half = body.copy()
    half[..., 32:] = False  # only runs of voxels inside the mask count: the loud noise outside is ignored
    assert noise_sigma(np.where(half, anatomy, 100 * rng.standard_normal(anatomy.shape)), half) < 1e-3
    with pytest.raises(MRSynthError, match="no three neighbouring voxels"):
        noise_sigma(anatomy, np.zeros(anatomy.shape, bool))


def test_shrunk_residual_transfer_carries_structure_the_chain_missed_and_not_noise():
    from mrsynth.reparam_chain import residual_transfer

    rng = np.random.default_rng(2)
    at_input = rng.random((4, 32, 32))
    body = np.ones(at_input.shape, bool)
    target = 3.0 - 2.0 * at_input  # an inverted contrast, slope -2
    noise = 0.05 * rng.standard_normal(at_input.shape)
    # only noise is missed: almost nothing is carried
    shrunk = residual_transfer(target, at_input, at_input + noise, body, 1.0, "shrink")
    assert np.abs(shrunk - target).mean() < 0.1 * np.abs(2.0 * noise).mean()
    # a misread region much larger than the noise: nearly all of it is carried, with the slope
    missed = np.zeros(at_input.shape)
    missed[:, 8:24, 8:24] = 0.5
    carried = residual_transfer(target, at_input, at_input + missed + noise, body, 1.0, "shrink")
    inside = (carried - target)[:, 10:22, 10:22].mean()
    assert -1.0 < inside < -0.9


def test_local_residual_transfer_filters_the_noise_out_and_carries_structure_by_r_squared():
    from mrsynth.reparam_chain import residual_transfer

    rng = np.random.default_rng(3)
    at_input = rng.random((4, 48, 48))
    body = np.ones(at_input.shape, bool)
    target = 3.0 - 2.0 * at_input  # linearly related to at_input: R^2 = 1, slope -2
    noise = 0.05 * rng.standard_normal(at_input.shape)
    quiet = residual_transfer(target, at_input, at_input + noise, body, 1.0, "local")
    assert np.abs(quiet - target).mean() < 0.35 * np.abs(2.0 * noise).mean()  # most of the noise stays behind
    missed = np.zeros(at_input.shape)
    missed[:, 12:36, 12:36] = 0.5
    carried = residual_transfer(target, at_input, at_input + missed + noise, body, 1.0, "local")
    assert np.abs((carried - target)[:, 16:32, 16:32].mean() + 1.0) < 0.05  # the structure, whole, times -2
    unrelated = rng.random(at_input.shape)  # R^2 near 0: almost nothing is carried
    assert (
        np.abs(residual_transfer(unrelated, at_input, at_input + missed, body, 1.0, "local") - unrelated).max() < 0.05
    )
    with pytest.raises(MRSynthError, match="unknown residual-transfer form"):
        residual_transfer(target, at_input, at_input, body, 1.0, "lee")


def test_ratio_residual_transfer_carries_structure_by_each_voxels_own_ratio():
    from mrsynth.reparam_chain import RATIO_CAP, residual_transfer

    rng = np.random.default_rng(4)
    at_input = 0.5 + 0.5 * rng.random((4, 48, 48))
    body = np.ones(at_input.shape, bool)
    # two tissues side by side: the target halves one and lifts the other by half
    factor = np.where(np.arange(48) < 24, 0.5, 1.5)[None, None, :]
    target = factor * at_input
    missed = np.zeros(at_input.shape)
    missed[:, 12:36, 12:36] = 0.5
    carried = residual_transfer(target, at_input, at_input + missed, body, 1.0, "ratio")
    r_squared = np.corrcoef(at_input.ravel(), target.ravel())[0, 1] ** 2
    # without noise the structure is carried whole, times R^2 and each side's own factor
    np.testing.assert_allclose((carried - target)[:, 16:32, 16:20], r_squared * 0.25, rtol=0.02)
    np.testing.assert_allclose((carried - target)[:, 16:32, 28:32], r_squared * 0.75, rtol=0.02)
    # at the input's own setting (ratio 1, R^2 1) the input comes back
    own = residual_transfer(at_input, at_input, at_input + missed, body, 1.0, "ratio")
    np.testing.assert_allclose(own, at_input + missed)
    # a dark input voxel does not blow the ratio up
    dark = at_input.copy()
    dark[:, 20, 20] = 1e-6
    wild = residual_transfer(target, dark, dark + missed, body, 1.0, "ratio") - target
    assert np.abs(wild).max() <= RATIO_CAP * 0.5 + 1e-9


@pytest.mark.parametrize("form", ["slope", "shrink", "local", "ratio"])
def test_a_chain_with_residual_transfer_synthesizes_the_transfer_of_its_two_renderings(tmp_path, form):
    from mrsynth.checkpoint import load_checkpoint, save_checkpoint
    from mrsynth.reparam_chain import chain_models, residual_transfer

    first = _stage("param", {"variant": "param", "config": {"target_setting": {"TR": 4500, "TE": 50}}}, 2)
    second = _stage("default", {"variant": "default"}, 3)
    weight = 0.5 if form == "slope" else 1.0
    network, info = chain_models(first, second, "chained", "1", residual_transfer=weight, form=form)
    assert info.normalisation["residual_transfer"] == weight
    assert info.normalisation["residual_transfer_form"] == form and "output" not in info.normalisation
    save_checkpoint(tmp_path / "transfer.pt", network, info)
    plain = chain_models(first, second, "chained", "1")
    assert "residual_transfer" not in plain[1].normalisation
    save_checkpoint(tmp_path / "plain.pt", *plain)
    image = _head_image()
    source = {"input_TR": 2000.0, "input_TE": 20.0}
    target = source | {"TR": 9000.0, "TE": 200.0}
    result = synthesize(load_checkpoint(tmp_path / "transfer.pt"), [image], parameters=target, device="cpu")
    runs = {
        name: synthesize(load_checkpoint(tmp_path / "plain.pt"), [image], parameters=values, device="cpu")
        for name, values in (("target", target), ("own", source | {"TR": 2000.0, "TE": 20.0}))
    }
    body = to_paper(runs["target"].mask) > 0
    x = to_paper(image) / runs["target"].scales[0]
    expected = residual_transfer(to_paper(runs["target"].hr), to_paper(runs["own"].hr), x, body, weight, form)
    np.testing.assert_allclose(to_paper(result.hr), expected, rtol=1e-5, atol=1e-5)
    if form == "slope":  # (the other forms carry little of this random test image's residual, mostly noise)
        assert not np.allclose(expected, to_paper(runs["target"].hr), atol=1e-3)
    assert len(result.reports) == 4  # both renderings, each with its mirrored pass
    with pytest.raises(MRSynthError, match="residual_transfer 1.5 is outside"):
        chain_models(first, second, "chained", "1", residual_transfer=1.5)
    with pytest.raises(MRSynthError, match="unknown residual-transfer form 'wiener'"):
        chain_models(first, second, "chained", "1", residual_transfer=1.0, form="wiener")


def test_an_ensemble_of_chains_synthesizes_the_transfer_of_its_mean_renderings(tmp_path):
    from mrsynth.checkpoint import load_checkpoint, save_checkpoint
    from mrsynth.ensemble import combine
    from mrsynth.reparam_chain import chain_models, first_stage, residual_transfer

    first = _stage("param", {"variant": "param", "config": {"target_setting": {"TR": 4500, "TE": 50}}}, 2)
    seconds = [_stage("default", {"variant": "default", "seed": seed}, seed) for seed in (3, 4)]

    def chains(**transfer):
        return [LoadedModel(*chain_models(first, second, "chained", "1", **transfer)) for second in seconds]

    plain = combine(chains())
    combined = combine(chains(residual_transfer=1.0))
    transferred = load_checkpoint(save_checkpoint(tmp_path / "e.pt", combined.network, combined.info))
    assert transferred.info.architecture == "Ensemble" and transferred.info.normalisation["residual_transfer"] == 1.0
    conditioning = DEFAULT_INPUT | {"input_TR": 2000.0, "input_TE": 20.0}
    c = torch.tensor([condition_vector(parameter_declaration("param"), conditioning)])
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():  # the mean of the two chains, given the conditions
        members = [m.network.eval()(x, c) for m in chains()]
        assert not torch.allclose(members[0], members[1])
        torch.testing.assert_close(transferred.network(x, c), (members[0] + members[1]) / 2)
    image = _head_image()
    source = {"input_TR": 2000.0, "input_TE": 20.0}
    target = source | {"TR": 9000.0, "TE": 200.0}
    runs = {
        name: synthesize(plain, [image], parameters=values, device="cpu")
        for name, values in (("target", target), ("own", source | {"TR": 2000.0, "TE": 20.0}))
    }
    singles = [to_paper(synthesize(m, [image], parameters=target, device="cpu").hr) for m in chains()]
    np.testing.assert_allclose(to_paper(runs["target"].hr), (singles[0] + singles[1]) / 2, rtol=1e-5, atol=1e-6)
    body = to_paper(runs["target"].mask) > 0
    x = to_paper(image) / runs["target"].scales[0]
    expected = residual_transfer(to_paper(runs["target"].hr), to_paper(runs["own"].hr), x, body, 1.0, "slope")
    result = synthesize(transferred, [image], parameters=target, device="cpu")
    np.testing.assert_allclose(to_paper(result.hr), expected, rtol=1e-5, atol=1e-5)
    # a chain can be built behind the ensemble's shared first stage, but not behind two different ones
    kept = first_stage(transferred)
    assert kept.info.architecture == "ParamNet"
    for key, value in first.network.state_dict().items():
        assert torch.equal(kept.network.state_dict()[key], value)
    other = _stage("param", {"variant": "param", "config": {"target_setting": {"TR": 4500, "TE": 50}}}, 5)
    mixed = combine([chains()[0], LoadedModel(*chain_models(other, seconds[1], "chained", "1"))])
    with pytest.raises(MRSynthError, match="have different first stages: take one member"):
        first_stage(mixed)
    with pytest.raises(MRSynthError, match=r"used differently \(normalisation differ"):
        combine([chains()[0], chains(residual_transfer=1.0)[1]])
    with pytest.raises(MRSynthError, match=r"used differently \(.*parameters.* differ"):
        combine([chains()[0], seconds[0]])


def test_a_chain_with_several_second_stages_is_the_ensemble_of_their_chains_with_one_first_stage(tmp_path):
    from mrsynth.checkpoint import load_checkpoint, save_checkpoint
    from mrsynth.ensemble import combine
    from mrsynth.reparam_chain import chain_models, first_stage

    first = _stage("param", {"variant": "param", "config": {"target_setting": {"TR": 4500, "TE": 50}}}, 2)
    seconds = [_stage("default", {"variant": "default", "seed": seed}, seed) for seed in (3, 4, 5)]
    network, info = chain_models(first, seconds, "chained", "1", residual_transfer=1.0, form="shrink")
    shared = load_checkpoint(save_checkpoint(tmp_path / "shared.pt", network, info))
    assert [t["seed"] for t in shared.info.training["second"]] == [3, 4, 5]
    chains = [chain_models(first, s, "chained", "1", residual_transfer=1.0, form="shrink") for s in seconds]
    ensemble = combine([LoadedModel(*chain) for chain in chains])
    conditioning = {"input_TR": 2000.0, "input_TE": 20.0, "TR": 1500.0, "TE": 20.0}
    c = torch.tensor([condition_vector(parameter_declaration("param"), conditioning)])
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(shared.network(x, c.expand(2, -1)), ensemble.network(x, c.expand(2, -1)))
    image = _head_image()
    out, expected = (synthesize(m, [image], parameters=conditioning, device="cpu").hr for m in (shared, ensemble))
    np.testing.assert_allclose(to_paper(out), to_paper(expected), rtol=1e-5, atol=1e-6)
    for key, value in first.network.state_dict().items():  # its first stage can be chained again
        assert torch.equal(first_stage(shared).network.state_dict()[key], value)
    other = _stage("default", {"variant": "default"}, 6)
    other.info.output = "another image"
    with pytest.raises(MRSynthError, match=r"second stages .* are used differently \(output differ"):
        chain_models(first, [seconds[0], other], "chained", "1")
    with pytest.raises(MRSynthError, match="is not a Default-to-Param ParamNet"):
        chain_models(first, [seconds[0], first], "chained", "1")
