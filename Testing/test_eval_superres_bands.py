"""scripts/eval_superres.py's boundary breakdown of Table 2: each region's T2 by distance from the CSF boundary."""

from __future__ import annotations

import sys

import numpy as np
from slicer_support import ROOT

from mrsynth.simulate import load_spec, tissue_names

sys.path.insert(0, str(ROOT / "scripts"))
import eval_superres  # noqa: E402


def test_csf_bands_split_by_distance_and_skip_invalid_voxels():
    spec = load_spec()
    names = tissue_names(spec)
    # one row of voxels: CSF, then grey matter, then white matter
    tissues = np.array([names.index(t) for t in ["csf"] * 2 + ["gm"] * 6 + ["wm"] * 4]).reshape(1, 1, 12)
    distance = eval_superres.csf_boundary_distance(tissues, spec)
    truth = np.arange(12, dtype=np.float64).reshape(1, 1, 12) * 10
    method = truth + 5
    method[0, 0, 4] = np.nan  # a voxel the method gives no T2 for
    rows = eval_superres.csf_bands(
        {"GT": truth, "A": method}, tissues, spec, np.ones_like(tissues, bool), distance, {"subject": "s"}
    )
    by_band = {(r["region"], r["csf_boundary_mm"][0]): r for r in rows}
    near, mid, far = by_band[("gm", 0.0)], by_band[("gm", 1.5)], by_band[("gm", 3.0)]
    assert (near["voxels"], mid["voxels"], far["voxels"]) == (1, 2, 3)
    assert near["GT"] == 20 and near["A"] == 25
    # the band's truth over all its voxels; the method's mean and its truth over the voxels it kept
    assert mid["GT"] == 35 and mid["A"] == 35 and mid["A truth"] == 30 and mid["A kept"] == 0.5
    assert far["A"] - far["A truth"] == 5
    assert by_band[("wm", 0.0)]["voxels"] == 0 and np.isnan(by_band[("wm", 0.0)]["A"])
    assert by_band[("wm", 3.0)]["voxels"] == 4 and by_band[("wm", 3.0)]["subject"] == "s"
    # CSF by its depth: its two voxels lie 2 and 1 voxels from grey matter
    assert by_band[("csf", 0.0)]["voxels"] == 1 and by_band[("csf", 1.5)]["GT"] == 0
