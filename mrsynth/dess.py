"""Quantitative T2 from dual-echo steady state (DESS), and the agreement statistics of paper 003, Table 2.

Signal model (documented choice): the two DESS echoes of a tissue component with proton density
PD and relaxation times T1, T2, T2* at flip angle a, repetition TR and echo time TE are

    S1 = PD sin(a) (1 - E1) / (1 - cos(a) E1) exp(-TE / T2*)                (the FID-like S+ echo)
    S2 = S1 sin^2(a/2) (1 + E1) / (1 - cos(a) E1) exp(-2 (TR - TE) / T2)    (the echo-like S- echo)

with E1 = exp(-TR / T1): the relation between the echoes that Sveinsson et al. (2017, "A simple
analytic method for estimating T2 in the knee from DESS") derive and invert, without their diffusion
term (no spoiler-gradient diffusion is simulated). A voxel mixing water and fat (bone marrow) sums
the two components' echoes; its T2 is then not a single value, so T2 truth is only defined for pure
tissues. The estimator (``estimate_t2``) inverts the ratio with a known T1, as the analytic method
does:  T2 = -2 (TR - TE) / ln(S2 / (S1 beta)),  beta = sin^2(a/2) (1 + E1) / (1 - cos(a) E1).
Protocol: the paper's DESS (TR 23 ms, TE 7 ms, flip 20 degrees), at the simulator's 1.5 T tissue table.
"""

from __future__ import annotations

import numpy as np

from .errors import MRSynthError
from .simulate import _blur, tissue_map, tissue_names

DESS_PROTOCOL = {"TR": 23.0, "TE": 7.0, "flip_deg": 20.0}
T2_RANGE = (1.0, 2000.0)


def _beta(t1: np.ndarray | float, protocol: dict) -> np.ndarray:
    alpha = np.deg2rad(protocol["flip_deg"])
    e1 = np.exp(-protocol["TR"] / np.asarray(t1, dtype=np.float64))
    return np.sin(alpha / 2) ** 2 * (1 + e1) / (1 - np.cos(alpha) * e1)


def dess_echoes(pd: float, t1: float, t2: float, t2star: float, protocol: dict = DESS_PROTOCOL) -> tuple[float, float]:
    """(S1, S2) of one tissue component by the signal model above (times in ms)."""
    alpha = np.deg2rad(protocol["flip_deg"])
    tr, te = protocol["TR"], protocol["TE"]
    e1 = np.exp(-tr / t1)
    s1 = pd * np.sin(alpha) * (1 - e1) / (1 - np.cos(alpha) * e1) * np.exp(-te / t2star)
    s2 = s1 * float(_beta(t1, protocol)) * np.exp(-2 * (tr - te) / t2)
    return float(s1), float(s2)


def tissue_dess(spec: dict, protocol: dict = DESS_PROTOCOL) -> dict[str, np.ndarray]:
    """Per tissue (spec order): S1, S2, and the T1 and T2 truth (NaN T2 where water and fat mix)."""
    fat = spec["fat_component"]
    s1, s2, t1, t2 = [], [], [], []
    for tissue in spec["tissues"].values():
        ff = tissue["fat_fraction"]
        water = dess_echoes(tissue["PD"], tissue["T1"], tissue["T2"], tissue["T2star"], protocol)
        fatty = dess_echoes(tissue["PD"], fat["T1"], fat["T2"], fat["T2star"], protocol)
        s1.append((1 - ff) * water[0] + ff * fatty[0])
        s2.append((1 - ff) * water[1] + ff * fatty[1])
        pure = ff in (0.0, 1.0) and tissue["PD"] > 0
        t1.append(fat["T1"] if ff == 1.0 else tissue["T1"])
        t2.append((fat["T2"] if ff == 1.0 else tissue["T2"]) if pure else np.nan)
    return {
        name: np.array(values, dtype=np.float64) for name, values in zip(("S1", "S2", "T1", "T2"), (s1, s2, t1, t2))
    }


def dess_maps(tissues: np.ndarray, spec: dict, protocol: dict = DESS_PROTOCOL) -> dict[str, np.ndarray]:
    """Noise-free DESS echoes (with the simulator's point-spread) and the true T1 map of a tissue-index map."""
    table = tissue_dess(spec, protocol)
    psf = spec["acquisition"]["psf_sigma_voxels"]
    return {
        "S1": _blur(table["S1"].astype(np.float32)[tissues], psf),
        "S2": _blur(table["S2"].astype(np.float32)[tissues], psf),
        "T1": table["T1"].astype(np.float32)[tissues],
    }


def simulate_dess(labels: np.ndarray, atlas: str, spec: dict, protocol: dict = DESS_PROTOCOL) -> dict[str, np.ndarray]:
    """``dess_maps`` of a label map, with its tissue indices."""
    tissues = tissue_map(labels, atlas, spec)
    return {**dess_maps(tissues, spec, protocol), "tissues": tissues}


def estimate_t2(s1: np.ndarray, s2: np.ndarray, t1: np.ndarray | float, protocol: dict = DESS_PROTOCOL) -> np.ndarray:
    """T2 (ms) from the echo ratio (Sveinsson et al. 2017); NaN where the ratio gives no T2 in ``T2_RANGE``."""
    s1, s2 = np.asarray(s1, dtype=np.float64), np.asarray(s2, dtype=np.float64)
    if s1.shape != s2.shape:
        raise MRSynthError(f"the echoes' shapes differ ({s1.shape} vs {s2.shape}): give S1 and S2 on one grid")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = s2 / (s1 * _beta(t1, protocol))
        t2 = -2 * (protocol["TR"] - protocol["TE"]) / np.log(ratio)
    valid = (s1 > 0) & (s2 > 0) & (ratio > 0) & (ratio < 1) & (t2 >= T2_RANGE[0]) & (t2 <= T2_RANGE[1])
    return np.where(valid, t2, np.nan)


def lins_ccc(x: np.ndarray, y: np.ndarray) -> float:
    """Lin's concordance correlation coefficient 2 cov / (var x + var y + (mean x - mean y)^2)."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.size != y.size or x.size < 2:
        raise MRSynthError("Lin's CCC needs two equally long series of two or more values")
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return float(2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2))


def cv_percent(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Coefficient of variation (%) of each pair (x_i, y_i): sample SD over mean, times 100."""
    pairs = np.stack([np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)])
    return pairs.std(axis=0, ddof=1) / pairs.mean(axis=0) * 100


def region_t2(
    t2: np.ndarray, tissues: np.ndarray, spec: dict, regions: list[str], core: np.ndarray
) -> dict[str, float]:
    """Mean T2 per tissue region over ``core`` voxels (NaN voxels left out)."""
    names = tissue_names(spec)
    out = {}
    for region in regions:
        values = t2[(tissues == names.index(region)) & core]
        out[region] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return out
