"""The CT modality of the simulator: HU table, simulated CT by label, windowing."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from mrsynth.ct import load_hu_table, simulate_ct, tissue_hu, window
from mrsynth.errors import MRSynthError
from mrsynth.simulate import bundled_phantom, load_spec, simulate, tissue_map, tissue_names
from mrsynth.volume_io import to_paper


def test_every_simulated_tissue_has_a_cited_value_in_its_published_range():
    table = load_hu_table()
    names = tissue_names(load_spec())
    means, spreads = tissue_hu(names, table)
    assert len(means) == len(names)
    for name in names:
        entry = table["tissues"][name]
        low, high = entry["published_range"]
        assert low <= entry["mean"] <= high, name
        assert entry["spread"] >= 0
        assert entry["source"].split(" ")[0] in table["sources"], name
    assert table["reference"] == {"air": -1000.0, "water": 0.0}
    hu = dict(zip(names, means, strict=True))
    assert hu["air"] == -1000.0
    assert -120 <= hu["fat"] <= -50
    assert 0 <= hu["csf"] <= 15  # water-like
    assert 20 <= hu["wm"] < hu["gm"] <= 45
    assert 10 <= hu["muscle"] <= 60
    assert 700 <= hu["skull"] <= 3000 and 200 <= hu["marrow"] <= 400


def test_missing_tissue_is_named():
    with pytest.raises(MRSynthError, match="unobtainium"):
        tissue_hu(["air", "unobtainium"])


def test_simulated_ct_values_by_label_on_the_phantom():
    phantom = bundled_phantom()
    spec = load_spec()
    names = tissue_names(spec)
    tissues = tissue_map(to_paper(phantom), "brainweb", spec)
    ct = simulate_ct(tissues, names, (1.0, 1.0, 1.0), np.random.default_rng(0))
    means, _ = tissue_hu(names)
    interior = {}
    for index, name in enumerate(names):
        core = np.asarray(tissues == index)
        # away from borders, where the point-spread mixes neighbours
        core = ndimage.binary_erosion(core, iterations=2)
        if core.sum() > 200:
            interior[name] = float(np.median(ct[core]))
            tolerance = 10 + 0.1 * abs(means[index])
            assert abs(interior[name] - means[index]) < tolerance, (name, interior[name], means[index])
    assert {"air", "csf", "gm", "wm", "fat", "skull"} <= set(interior)
    assert interior["air"] < interior["fat"] < interior["csf"] < interior["wm"] < interior["gm"] < interior["skull"]
    air = np.asarray(ndimage.binary_erosion(tissues == names.index("air"), iterations=3))
    assert 3.0 < float(ct[air].std()) < 7.0  # the 5 HU noise, no texture in air


def test_simulate_with_ct_leaves_mr_outputs_unchanged():
    labels = sitk.GetArrayFromImage(bundled_phantom())[60:76, 40:120, 40:120].copy()
    image = sitk.GetImageFromArray(labels)
    without = simulate(image, "brainweb", seed=3, slice_factor=4)
    with_ct = simulate(image, "brainweb", seed=3, slice_factor=4, ct=True)
    assert set(with_ct) - set(without) == {"CT"}
    for name, volume in without.items():
        assert np.array_equal(sitk.GetArrayViewFromImage(volume), sitk.GetArrayViewFromImage(with_ct[name])), name
    assert with_ct["CT"].GetSize() == without["TSE_HR"].GetSize()


def test_window_maps_level_and_width():
    hu = np.array([-1000.0, 20.0, 40.0, 80.0, 1000.0])
    assert window(hu, 40, 80).tolist() == [0.0, 0.25, 0.5, 1.0, 1.0]
    with pytest.raises(MRSynthError, match="width"):
        window(hu, 40, 0)
