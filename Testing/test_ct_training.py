"""CT -> MR training (paper 004 losses) on a small simulated CT/T1 pair, and its model in the engine."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from mrsynth.checkpoint import ModelInfo, load_checkpoint, save_checkpoint
from mrsynth.ct_training import CT_DEFAULTS, train_ct2mr
from mrsynth.feature_encoder import ConvAutoencoder
from mrsynth.inference import InferenceOptions
from mrsynth.simulate import bundled_phantom, simulate
from mrsynth.synthesis import synthesize
from mrsynth.training import load_config
from mrsynth.volume_io import write_volume


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    labels = sitk.GetArrayFromImage(bundled_phantom())[70:82, 30:130, 40:140].copy()
    folder = tmp_path_factory.mktemp("ct") / "case"
    simulate(sitk.GetImageFromArray(labels), "brainweb", folder, seed=1, ct=True)
    return folder


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    torch.manual_seed(0)
    arguments = {"width": 4, "depth": 2, "max_width": 8}
    info = ModelInfo("enc", "ConvAutoencoder", arguments, ["MR"], "MR", [1.0] * 3, [1, 32, 32], [1, 16, 16])
    return save_checkpoint(tmp_path_factory.mktemp("enc") / "enc.pt", ConvAutoencoder(**arguments), info)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["mse", "bce", "contextual"])
def test_each_loss_trains_and_the_model_synthesizes_a_t1(case, encoder, tmp_path, loss):
    overrides = {
        "data": {"train": [str(case)], "val": [str(case)]},
        "model": {"width": 4, "context": 1},
        "loss": loss,
        "feature_network": str(encoder),
        "feature_layer": 1,
        "crop": 32,
        "batch_size": 2,
        "iterations": 2,
        "epoch_patches": 2,
        "val_patches": 2,
        "patch": [8, 64, 64],
        "stride": [4, 64, 64],
        "device": "cpu",
    }
    config = load_config(None, overrides, CT_DEFAULTS)
    model_path = train_ct2mr(config, tmp_path / "run")
    model = load_checkpoint(model_path)
    assert model.info.normalisation["method"] == "none" and model.info.inputs == ["CT"]
    assert model.info.arguments["output"] == ("sigmoid" if loss == "bce" else "linear")
    ct = sitk.ReadImage(str(case / "CT.nii.gz"))
    options = InferenceOptions.preset("paper", stride=(4, 64, 64))
    result = synthesize(model, [ct], options=options, flip_average=False)
    out = sitk.GetArrayFromImage(result.hr)
    assert out.shape == sitk.GetArrayFromImage(ct).shape and np.isfinite(out).all()
    assert result.scales == [1.0]  # HU go in as they are
    # the same CT shifted by 1000 HU is a different image to a CT model (no rescaling of the input)
    shifted = synthesize(model, [ct + 1000.0], options=options, flip_average=False)
    assert not np.allclose(sitk.GetArrayFromImage(shifted.hr), out)
    write_volume(result.hr, tmp_path / "out.nii.gz")


def test_bundled_ct_to_t1_model_by_name_gives_brain_brighter_than_csf(case):
    """The registered model runs through the CLI path; on T1w, white matter is brighter than CSF."""
    from mrsynth.models import load_model
    from mrsynth.simulate import load_spec, tissue_map, tissue_names
    from mrsynth.volume_io import to_paper

    model = load_model("ct-to-t1-sim")
    assert model.info.inputs == ["CT"] and model.info.output == "T1w"
    ct = sitk.ReadImage(str(case / "CT.nii.gz"))
    out = to_paper(synthesize(model, [ct], options=InferenceOptions.preset("paper"), flip_average=False).hr)
    spec = load_spec()
    labels = sitk.GetArrayFromImage(bundled_phantom())[70:82, 30:130, 40:140]
    tissues = tissue_map(to_paper(sitk.GetImageFromArray(labels)), "brainweb", spec)
    names = tissue_names(spec)
    wm = float(np.median(out[tissues == names.index("wm")]))
    csf = float(np.median(out[tissues == names.index("csf")]))
    assert wm > csf
