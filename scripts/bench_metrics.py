"""SSIM speed on a real 240x240x155 volume: mrsynth's 21x21x3 window against scikit-image's SSIM.

scikit-image only takes cubic windows, so the peer runs with 21x21x21 (a larger window, the closest it
can do) and with 3x3x3; medians of repeated runs are printed with their ratios.

    python scripts/bench_metrics.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import SimpleITK as sitk
from skimage.metrics import structural_similarity

from mrsynth import metrics
from mrsynth.volume_io import to_paper

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "brats_met_00110"


def median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    pred = to_paper(sitk.ReadImage(str(DATA / "BraTS-MET-00110-000-t1n.nii.gz"), sitk.sitkFloat32))
    ref = to_paper(sitk.ReadImage(str(DATA / "BraTS-MET-00110-000-t2w.nii.gz"), sitk.sitkFloat32))
    data_range = float(ref.max() - ref.min())
    ours = median_seconds(lambda: metrics.ssim_map(pred, ref, (21, 21, 3), data_range), args.repeats)
    print(f"volume {ref.shape} (SI, AP, LR), median of {args.repeats} runs")
    print(f"mrsynth ssim_map 21x21x3: {ours:.2f} s")
    for window in (21, 3):
        peer = median_seconds(
            lambda w=window: structural_similarity(pred, ref, win_size=w, data_range=data_range, full=True),
            args.repeats,
        )
        print(f"scikit-image {window}x{window}x{window}: {peer:.2f} s  (ratio peer / mrsynth: {peer / ours:.2f})")


if __name__ == "__main__":
    main()
