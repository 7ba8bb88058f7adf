"""Perceptual and contextual losses between real-looking MR slice pairs, on a given feature network.

The BrainWeb phantom (never used to train mr-feature-encoder) is simulated by mrsynth.simulate; its
middle axial T1w TSE slice is compared with: itself plus noise, itself shifted by 3 pixels (the
misalignment the contextual loss is meant to tolerate), the T2w TSE of the same slice, and the T1w
slice 20 mm higher. Images in p99 units.

    PYTHONPATH=. python scripts/feature_loss_table.py --features mr-feature-encoder
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from mrsynth.feature_losses import contextual_loss, load_feature_network, perceptual_loss
from mrsynth.masks import body_mask, normalise_p99
from mrsynth.simulate import bundled_phantom, simulate
from mrsynth.volume_io import to_paper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", default="mr-feature-encoder", help="feature network name or file")
    parser.add_argument("--points", type=int, default=2000, help="feature points kept (strided) for CX")
    args = parser.parse_args()
    torch.manual_seed(0)
    features = load_feature_network(args.features)
    images = simulate(bundled_phantom(), "brainweb", seed=7)
    volumes = {}
    for name in ("TSE_HR", "TSE_T2_HR"):
        volume = to_paper(images[name])
        volumes[name] = normalise_p99(volume, body_mask(volume))[0].astype(np.float32)
    middle = volumes["TSE_HR"].shape[0] // 2
    t1 = volumes["TSE_HR"][middle]
    rng = np.random.default_rng(0)
    pairs = {
        "same slice + noise (sigma 0.03)": t1 + rng.normal(0, 0.03, t1.shape).astype(np.float32),
        "same slice shifted 3 px": np.roll(t1, 3, axis=1),
        "T2w TSE, same slice": volumes["TSE_T2_HR"][middle],
        "T1w slice 20 mm away": volumes["TSE_HR"][middle + 20],
    }

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a))[None, None]

    target = tensor(t1)
    print(f"feature network: {args.features} ({features.kind}, {features.layer_count} layers)")
    print("| compared with the T1w slice | perceptual, layer 0 | perceptual, layer 1 | CX, layer 1 | CX, layer 2 |")
    print("|---|---|---|---|---|")
    with torch.no_grad():
        wanted = features(target, last=2)
        for name, image in pairs.items():
            x = tensor(image)
            got = features(x, last=2)
            p0 = perceptual_loss(features, x, target, layers=(0,)).item()
            p1 = perceptual_loss(features, x, target, layers=(1,)).item()
            cx = [contextual_loss(got[i], wanted[i], max_points=args.points, sampling="strided").item() for i in (1, 2)]
            print(f"| {name} | {p0:.4f} | {p1:.4f} | {cx[0]:.3f} | {cx[1]:.3f} |")


if __name__ == "__main__":
    main()
