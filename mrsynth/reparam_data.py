"""Training and test data for re-parameterisation (paper 001, section 3.3), from the simulator.

Signal: the spin-echo equation of ``simulate`` per tissue of the 1.5 T spec, with its fat
component: S = PD [(1 - ff) (1 - exp(-TR/T1)) exp(-TE/T2) + ff (1 - exp(-TR/T1_fat)) exp(-TE/T2_fat)],
from each tissue's PD, T1, T2 and fat fraction ff (times in ms). Tissue maps come from label maps
(SynthSeg subjects for training, the BrainWeb phantom for testing, as the paper tested on BrainWeb)
through ``simulate.tissue_map``. An acquisition spreads the tissue signals to voxels, blurs each
axial slice in-plane with the spec's Gaussian point-spread (0.5 voxel) and adds Rician noise of
sigma = (99th percentile of the noise-free image inside the head) / SNR (SNR 30, the spec's TSE
SNR). Inputs are noisy; targets are the noise-free image at the new TR/TE (the truth).

Parameters: TR uniform in 1.2-10 s; TE log-uniform in 20 ms-1 s (density proportional to 1/TE, so
short TE, where the image changes fastest, is drawn most often: half the draws fall below 141 ms).

Normalisation: the input and the target are each divided by their own 99th percentile inside the
head, so the network's output is in units of the output image's 99th percentile (1.0 = that
percentile), the convention of every synthesis model here, and does not depend on the scanner's
units. (Dividing the target by the input's percentile instead keeps the absolute brightness change,
but makes the problem ill-conditioned: an input at TE 1 s is almost black, its percentile tiny, and
a short-TE target then reaches 20 times the input's percentile and dominates the loss.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .errors import MRSynthError
from .files import atomic_path
from .simulate import _rician, _tissue_se, load_spec, tissue_map, tissue_names
from .volume_io import paper_axes, read_labels

TR_RANGE = (1200.0, 10000.0)
TE_RANGE = (20.0, 1000.0)
TR_SCALES = ("linear", "log")  # uniform TR (the paper) or log-uniform TR
NEAR_SPREAD = 0.4  # log-normal spread of a target drawn near its input's setting (``sample_near``)
DEFAULT_INPUT = {"TR": 4500.0, "TE": 50.0}  # the paper's fixed input acquisition for Default-to-Param
SNR = 30.0
EXTRACRANIAL = ("fat", "muscle", "skin", "connective")  # the soft tissues that ``shuffled_tissues`` permutes


def parameter_declaration(variant: str, tr_encoding: str = "linear") -> dict[str, dict]:
    """The conditioning parameters of a variant, in the order the network takes them.

    ``tr_encoding`` is how the output's TR enters the network: linearly over its range (every bundled
    model before ``reparam-default-sim`` version 3), or on a log scale, which spreads the short TRs where
    the signal changes fastest (TR 1.5 and 2 s enter at 0.03 and 0.09 linearly, at 0.11 and 0.24 on
    the log scale). The input's TR of Param-to-Param stays linear.
    """
    if tr_encoding not in TR_SCALES:
        raise MRSynthError(f"unknown tr_encoding {tr_encoding!r}: use linear or log")
    target = {
        "TR": {
            "unit": "ms",
            "min": TR_RANGE[0],
            "max": TR_RANGE[1],
            "scale": tr_encoding,
            "description": "TR of the output",
        },
        "TE": {"unit": "ms", "min": TE_RANGE[0], "max": TE_RANGE[1], "scale": "log", "description": "TE of the output"},
    }
    if variant == "default":
        return target
    if variant == "param":
        given = {
            f"input_{name}": dict(spec, description=f"{name} of the input image")
            for name, spec in parameter_declaration("default").items()
        }
        return given | target
    raise MRSynthError(f"unknown re-parameterisation variant {variant!r}: use default or param")


def sample_parameters(rng: np.random.Generator, tr_scale: str = "linear") -> dict[str, float]:
    """TR uniform over its range, TE log-uniform (more short TEs), as section 3.3 describes.

    ``tr_scale="log"`` draws TR log-uniformly too (half the draws below 3.46 s): the paper's reason for
    favouring short TE holds for TR as well, since T1 recovery changes the image fastest at short TR.
    Param-to-Param trained on uniform TR makes inputs at short TR and TE (where CSF is nearly as
    bright as tissue) too dark; drawing more of them did not cure that (docs/other-systems.md).
    """
    if tr_scale not in TR_SCALES:
        raise MRSynthError(f"unknown TR sampling scale {tr_scale!r}: use linear or log")
    if tr_scale == "log":
        tr = float(math.exp(rng.uniform(math.log(TR_RANGE[0]), math.log(TR_RANGE[1]))))
    else:
        tr = float(rng.uniform(*TR_RANGE))
    te = float(math.exp(rng.uniform(math.log(TE_RANGE[0]), math.log(TE_RANGE[1]))))
    return {"TR": tr, "TE": te}


def sample_near(rng: np.random.Generator, source: dict[str, float], spread: float = NEAR_SPREAD) -> dict[str, float]:
    """A target setting close to ``source``: TR and TE each times exp(N(0, ``spread``)), kept in range.

    Why: with input and target drawn independently, a target next to the input's own setting is
    rare, and there a rescaled copy of the input is already nearly the target; Param-to-Param stayed
    below that copy at the settings next to its input (docs/other-systems.md). A spread of 0.4 puts
    two thirds of these targets within a factor 1.5 of the input's TR and TE.
    """
    tr = source["TR"] * math.exp(rng.normal(0.0, spread))
    te = source["TE"] * math.exp(rng.normal(0.0, spread))
    return {"TR": float(np.clip(tr, *TR_RANGE)), "TE": float(np.clip(te, *TE_RANGE))}


def tissue_signals(tr: float, te: float, spec: dict | None = None) -> np.ndarray:
    """Noise-free spin-echo signal of every tissue (spec order) at ``tr``, ``te`` (ms)."""
    spec = load_spec() if spec is None else spec
    fat = spec["fat_component"]
    return np.array([_tissue_se(t, fat, {"TR": tr, "TE": te}) for t in spec["tissues"].values()], dtype=np.float32)


def shuffled_tissues(rng: np.random.Generator, spec: dict) -> np.ndarray:
    """A tissue order (tissue t takes tissue ``order[t]``'s properties), the extra-cranial soft tissues permuted.

    Why (a training augmentation, our addition): SynthSeg's extra-cerebral labels have no official
    anatomy (the spec's note), and the training subjects have little skin, which at 1.5 T has CSF's
    properties, while the BrainWeb test phantom has a thick layer of it. Giving each extra-cranial
    region, at random, another of these tissues' properties makes a network tell them apart by their
    signal at the input's setting rather than by where they lie.
    """
    names = tissue_names(spec)
    order = np.arange(len(names))
    chosen = np.array([names.index(name) for name in EXTRACRANIAL])
    order[chosen] = rng.permutation(chosen)
    return order


def noise_free(tissues: np.ndarray, signals: np.ndarray, psf: float) -> np.ndarray:
    """Tissue signals spread to voxels and blurred in-plane (the last two axes) only."""
    image = signals[tissues]
    sigma = (0,) * (image.ndim - 2) + (psf, psf)
    return ndimage.gaussian_filter(image, sigma, output=np.float32) if psf > 0 else image


def acquire(clean: np.ndarray, head: np.ndarray, rng: np.random.Generator, snr: float = SNR) -> np.ndarray:
    """Rician magnitude of ``clean`` with sigma = (99th percentile inside the head) / SNR."""
    return _rician(clean, None, float(np.percentile(clean[head], 99)) / snr, rng)


@dataclass
class Anatomy:
    """Tissue indices and head mask of axial slices, in paper order [SI, AP, LR]."""

    name: str
    tissues: np.ndarray
    head: np.ndarray

    @classmethod
    def from_labels(cls, name: str, image: sitk.Image, atlas: str, slices: int | None = None) -> Anatomy:
        """All axial slices, or ``slices`` evenly spaced over the middle 70 % of the head's extent."""
        labels = np.transpose(sitk.GetArrayViewFromImage(image), paper_axes(image))
        spec = load_spec()
        head = ndimage.binary_fill_holes(labels != 0)
        tissues = tissue_map(labels, atlas, spec)
        occupied = np.flatnonzero(head.any(axis=(1, 2)))
        if occupied.size == 0:
            raise MRSynthError(f"label map {name} is all background: check the file")
        box = [np.flatnonzero(head.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
        lo = [max(0, int(b[0]) - 4) for b in box]
        hi = [min(n, int(b[-1]) + 5) for b, n in zip(box, head.shape, strict=True)]
        if slices is None:
            rows = np.arange(lo[0], hi[0])
        else:
            span = hi[0] - lo[0]
            rows = np.linspace(lo[0] + 0.15 * span, hi[0] - 0.15 * span, slices).round().astype(int)
        keep = (rows, slice(lo[1], hi[1]), slice(lo[2], hi[2]))
        return cls(name, np.ascontiguousarray(tissues[keep]), np.ascontiguousarray(head[keep]))

    @classmethod
    def from_file(cls, path: str, atlas: str, slices: int | None = None) -> Anatomy:
        """A label map, or an anatomy ``save`` wrote (``.npz``: for machines without SimpleITK)."""
        if str(path).endswith(".npz"):
            return cls.load(path, atlas, slices)
        return cls.from_labels(str(path), read_labels(path), atlas, slices)

    def save(self, path: str | Path, atlas: str, slices: int | None) -> None:
        """Write the tissue indices and head mask with the atlas and slice count they were made with."""
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            count = -1 if slices is None else slices
            np.savez_compressed(handle, tissues=self.tissues, head=self.head, name=self.name, atlas=atlas, slices=count)

    @classmethod
    def load(cls, path: str | Path, atlas: str, slices: int | None = None) -> Anatomy:
        """An anatomy ``save`` wrote; refused when it was made with another atlas or slice count."""
        with np.load(path) as data:
            made = (str(data["atlas"]), None if int(data["slices"]) < 0 else int(data["slices"]))
            if made != (atlas, slices):
                raise MRSynthError(
                    f"{path} holds an anatomy made with atlas {made[0]} and slices {made[1]}, not {atlas} and "
                    f"{slices}: write it again with scripts/export_anatomies.py or use the label map"
                )
            return cls(str(data["name"]), data["tissues"], data["head"].astype(bool))


PERCENTILE_VOXELS = 50_000  # head voxels that stand in for the whole head in the 99th percentiles


class CropSimulator:
    """Training pairs of one anatomy, simulated only where the crops are.

    Why: simulating the whole stack of slices at two settings for every draw, to use four 64x64
    crops of it, took two thirds of a training step on a CPU. The crops here are what the whole-stack
    simulation would give at those places: the in-plane blur of a crop with a margin of the blur's
    radius equals the blur of the whole slice there. Only the head-wide quantities, the 99th
    percentiles that set the noise level and the two normalisations, come from a fixed random
    sample of ``voxels`` head voxels, whose blurred tissue shares are computed once.
    """

    def __init__(self, anatomy: Anatomy, spec: dict | None = None, voxels: int = PERCENTILE_VOXELS, seed: int = 0):
        self.anatomy, self.spec = anatomy, load_spec() if spec is None else spec
        self.psf = float(self.spec["acquisition"]["psf_sigma_voxels"])
        self.margin = int(4.0 * self.psf + 0.5)  # scipy's Gaussian radius at its default truncation
        inside = np.flatnonzero(anatomy.head)
        if inside.size == 0:
            raise MRSynthError(f"anatomy {anatomy.name} has an empty head mask: check its label map")
        self.head_voxels = np.column_stack(np.unravel_index(inside, anatomy.head.shape))
        chosen = np.random.default_rng(seed).choice(inside, size=min(voxels, inside.size), replace=False)
        tissues = len(self.spec["tissues"])
        self.shares = np.zeros((tissues, chosen.size), dtype=np.float32)
        for tissue in np.unique(anatomy.tissues):
            indicator = np.zeros(tissues, dtype=np.float32)
            indicator[tissue] = 1.0
            self.shares[tissue] = noise_free(anatomy.tissues, indicator, self.psf).ravel()[chosen]

    def random_crops(self, size: int, count: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
        """(slice, AP start, LR start) of ``count`` crops, each centred on a head voxel (clipped to the slice)."""
        _, ap, lr = self.anatomy.head.shape
        if ap < size or lr < size:
            raise MRSynthError(f"slices of {ap} x {lr} voxels are smaller than the crop {size}: use a smaller crop")
        chosen = self.head_voxels[rng.integers(len(self.head_voxels), size=count)]
        return [
            (int(s), int(np.clip(a - size // 2, 0, ap - size)), int(np.clip(b - size // 2, 0, lr - size)))
            for s, a, b in chosen
        ]

    def head_p99(self, values: np.ndarray) -> float:
        p99 = float(np.percentile(values, 99))
        if p99 <= 0:
            raise MRSynthError(f"anatomy {self.anatomy.name} is black at this setting: check its label map")
        return p99

    def region(self, signals: np.ndarray, crop: tuple[int, int, int], size: int) -> np.ndarray:
        """The noise-free image of one ``size`` x ``size`` crop, as the whole-slice blur gives it."""
        s, a, b = crop
        _, ap, lr = self.anatomy.tissues.shape
        a0, b0 = max(0, a - self.margin), max(0, b - self.margin)
        a1, b1 = min(ap, a + size + self.margin), min(lr, b + size + self.margin)
        image = noise_free(self.anatomy.tissues[s : s + 1, a0:a1, b0:b1], signals, self.psf)
        return image[0, a - a0 : a - a0 + size, b - b0 : b - b0 + size]

    def pairs(
        self,
        source: Mapping[str, float],
        target: Mapping[str, float],
        crops: Sequence[tuple[int, int, int]],
        size: int,
        rng: np.random.Generator,
        order: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Noisy input and noise-free target crops [N, size, size], each in units of its own head p99."""
        x, ys = self.renders(source, [target], crops, size, rng, order=order)
        return x, ys[:, 0]

    def renders(
        self,
        source: Mapping[str, float],
        targets: Sequence[Mapping[str, float]],
        crops: Sequence[tuple[int, int, int]],
        size: int,
        rng: np.random.Generator,
        units: str = "own",
        maps: bool = False,
        order: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Noisy input crops [N, size, size] and noise-free crops at each target setting [N, T, size, size].

        The input is in units of its head p99; each target in its own (``units="own"``), or in the
        input's (``units="input"``), which keeps the brightness change between the settings: what a
        model that renders tissue maps (``tissue_maps``) must reproduce. With ``maps`` the targets are
        followed by the true PD (in the input's units), fat fraction, T1 and T2 (ms) of each voxel's
        tissue, unblurred: four more channels. ``order`` (``shuffled_tissues``) simulates tissue t with
        the properties of tissue ``order[t]``.
        """
        if units not in ("own", "input"):
            raise MRSynthError(f"unknown target units {units!r}: use own or input")
        given = tissue_signals(source["TR"], source["TE"], self.spec)
        wanted = [tissue_signals(t["TR"], t["TE"], self.spec) for t in targets]
        if order is not None:
            given, wanted = given[order], [w[order] for w in wanted]
        clean = given @ self.shares
        sigma = self.head_p99(clean) / SNR
        input_scale = self.head_p99(_rician(clean, None, sigma, rng))
        scales = [input_scale if units == "input" else self.head_p99(w @ self.shares) for w in wanted]
        table = self.tissue_table(input_scale) if maps else None
        if table is not None and order is not None:
            table = table[:, order]
        xs, ys = [], []
        for crop in crops:
            xs.append(_rician(self.region(given, crop, size), None, sigma, rng) / input_scale)
            ys.append([self.region(w, crop, size) / scale for w, scale in zip(wanted, scales, strict=True)])
            if table is not None:
                s, a, b = crop
                ys[-1] += list(table[:, self.anatomy.tissues[s, a : a + size, b : b + size]])
        return np.stack(xs).astype(np.float32), np.asarray(ys, dtype=np.float32)

    def head_slope(
        self, target: Mapping[str, float], source: Mapping[str, float], order: np.ndarray | None = None
    ) -> float:
        """Least-squares slope of the noise-free image at ``target`` on the one at ``source``, over the head
        sample, each in units of its own head p99: what a line fitted between the two whole images gives."""
        images = []
        for setting in (target, source):
            signals = tissue_signals(setting["TR"], setting["TE"], self.spec)
            clean = (signals if order is None else signals[order]) @ self.shares
            images.append(clean / self.head_p99(clean))
        y, x = images
        return float(np.cov(x, y)[0, 1] / max(float(np.var(x, ddof=1)), np.finfo(np.float64).tiny))

    def tissue_table(self, input_scale: float) -> np.ndarray:
        """[4, tissues]: PD over ``input_scale``, fat fraction, T1 and T2 (ms) of every tissue of the spec."""
        rows = [[t["PD"] / input_scale, t["fat_fraction"], t["T1"], t["T2"]] for t in self.spec["tissues"].values()]
        return np.asarray(rows, dtype=np.float32).T


def condition_values(declared: Mapping[str, Mapping], source: Mapping[str, float], target: Mapping[str, float]) -> dict:
    """The values a variant's declaration names: ``input_TR``/``input_TE`` from the source, TR/TE from the target."""
    values = {}
    for name in declared:
        values[name] = source[name.removeprefix("input_")] if name.startswith("input_") else target[name]
    return values


def grid_settings(trs: Sequence[float], tes: Sequence[float]) -> list[dict[str, float]]:
    """Every TR x TE combination, TR major."""
    return [{"TR": float(tr), "TE": float(te)} for tr in trs for te in tes]
