"""Why DESS T2 in CSF is fragile after thick slices: the forward model's ringing and the echoes' error deep in CSF.

Prints the thick-slice forward model's step response as TCI brings it back (its overshoot), then,
for one simulated DESS subject made thick along one axis, the relative error of TCI's and FI's
echoes in CSF deeper than a few mm (where thick slices mix no other tissue), and the T2 those
echoes give there against the truth. A 1 % echo-ratio error moves CSF's T2 by about 10 %
(docs/superresolution.md, "Where the T2 error lies").

    python scripts/dess_csf_ringing.py --case 13 --axis LR
"""

from __future__ import annotations

import argparse

import numpy as np
from eval_superres import crop_box, dess_labels
from scipy import ndimage

from mrsynth.dess import estimate_t2, simulate_dess
from mrsynth.simulate import load_spec, tissue_names
from mrsynth.sr_baselines import fourier, tricubic
from mrsynth.thick_slices import AXIS_NAMES, make_thick
from mrsynth.volume_io import read_labels, to_paper


def step_response(factor: int, length: int = 64) -> np.ndarray:
    """A unit step along the slice axis, made thick and brought back by TCI."""
    step = np.zeros((1, 1, length), np.float32)
    step[..., length // 2 :] = 1
    return tricubic(make_thick(step, 2, factor), 2, factor, length)[0, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="13", help="a SynthSeg subject number or brainweb")
    parser.add_argument("--axis", default="LR", choices=AXIS_NAMES)
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--depths", type=float, nargs="+", default=[3.0, 5.0], help="CSF depths (mm) to report")
    args = parser.parse_args()
    response = step_response(args.factor)
    print(f"TCI step response: undershoot {-response.min():.3f}, overshoot {response.max() - 1:.3f}")
    spec = load_spec()
    path, atlas = dess_labels([args.case])[0]
    labels = to_paper(read_labels(path)).astype(np.int64)
    labels = labels[crop_box(labels > 0)]
    dess = simulate_dess(labels, atlas, spec)
    csf = dess["tissues"] == tissue_names(spec).index("csf")
    depth = ndimage.distance_transform_edt(csf)
    axis, n = AXIS_NAMES.index(args.axis), labels.shape[AXIS_NAMES.index(args.axis)]
    thick = {echo: make_thick(dess[echo], axis, args.factor) for echo in ("S1", "S2")}
    truth = estimate_t2(dess["S1"], dess["S2"], dess["T1"])
    for name, method in (("TCI", tricubic), ("FI", fourier)):
        echoes = {echo: method(t, axis, args.factor, n) for echo, t in thick.items()}
        t2 = estimate_t2(echoes["S1"], echoes["S2"], dess["T1"])
        for low in args.depths:
            deep = csf & (depth > low)
            errors = {e: np.percentile(echoes[e][deep] / dess[e][deep] - 1, [25, 50, 75]) for e in echoes}
            kept = deep & np.isfinite(t2) & np.isfinite(truth)
            print(
                f"{name}, CSF deeper than {low:g} mm ({int(deep.sum())} voxels): "
                + ", ".join(f"{e} error quartiles {q[0]:+.4f} {q[1]:+.4f} {q[2]:+.4f}" for e, q in errors.items())
                + f"; T2 {t2[kept].mean():.1f} ms against the truth's {truth[kept].mean():.1f} over the"
                f" {kept.sum() / deep.sum():.2f} of them it gives a T2 for"
            )


if __name__ == "__main__":
    main()
