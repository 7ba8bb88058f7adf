"""The bundled default model on a subject it never saw: it must beat what a user gets without it.

The issue's check: on an independently simulated subject, the synthesized high-resolution TSE has a
higher SSIM (21x21x3, inside the head, both images scaled by their 99th percentile) against the true
high-resolution T1w TSE than the acquired thick TSE upsampled by cubic B-spline and than the best
global linear map of the two GE echoes.
"""

from __future__ import annotations

import SimpleITK as sitk

from mrsynth.baselines import best_linear_map, bspline_upsample
from mrsynth.evaluation import evaluate
from mrsynth.models import load_model
from mrsynth.simulate import bundled_phantom, simulate
from mrsynth.synthesis import synthesize
from mrsynth.volume_io import from_paper, same_grid, to_paper


def test_default_model_beats_both_baselines_on_an_unseen_subject():
    # The BrainWeb phantom (never used in training), a noise seed never used anywhere else,
    # cropped to the upper head to keep the test short.
    phantom = sitk.RegionOfInterest(bundled_phantom(), (176, 128, 120), (20, 26, 10))
    sim = simulate(phantom, "brainweb", seed=777)
    model = load_model("gre-to-tse-sim")
    inputs = [sim["GE_aOP"], sim["GE_aIP"]]
    result = synthesize(model, inputs, device="cpu")  # default: the fast preset
    truth, head = sim["TSE_HR"], sim["head_mask"]
    assert same_grid(result.hr, sim["GE_aOP"])
    mask = to_paper(head) > 0
    linear = from_paper(best_linear_map([to_paper(x) for x in inputs], to_paper(truth), mask), truth)
    ssim = {
        name: evaluate(image, truth, head).metrics["body"]["ssim"]
        for name, image in {
            "model": result.hr,
            "bspline": bspline_upsample(sim["TSE_thick"], truth),
            "linear": linear,
        }.items()
    }
    assert ssim["model"] > ssim["bspline"], ssim
    assert ssim["model"] > ssim["linear"], ssim
