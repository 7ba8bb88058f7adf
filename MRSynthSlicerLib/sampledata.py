"""The one-click sample: a small subject simulated from the bundled BrainWeb phantom.

``make_sample`` writes it (deterministic: fixed crop and noise seed); ``scripts/make_sample_data.py``
runs it once to produce the files published as release assets, whose SHA256 are listed here so
Slicer's SampleData module verifies every download. ``load_sample`` builds the same subject in
memory for the self-tests, with no download.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SAMPLE_URL = "https://github.com/mrsynth/MRSynth/releases/download/sample-data-v1/"
SAMPLE_SEED = 2026
# Index ranges of the bundled phantom (i: AP, j: LR, k: SI); LR length a multiple of the slice factor.
SAMPLE_CROP = ((40, 176), (34, 146), (40, 136))
SAMPLE_SHA256 = {  # of make_sample's files (numpy 2.4, SimpleITK 2.5); a test checks they are reproduced
    "GE_aIP": "fb5e86a2b4f26cd9b01bfd83892f9d0986db66f1d22c00a9a933308f6155d51d",
    "GE_aOP": "dc7ff44805a3ec8644ae06ecd99b519d229d5846b4533b6462811c490b713280",
    "TSE_HR": "b7be96489a0c8b21999d0d8cf33e0a6aa892692d5db6b8279f17cb8c108159cc",
    "TSE_thick": "0ea8214fce5a2d278960e648d9c436c4bafb652ca5653ef255378b6bddc50cfe",
    "head_mask": "4f1dd3c5ee40d2963918eee7d27bb56a7a51b3b9422a7b6c64cded48efd40f56",
}
MODULE_SAMPLES = {
    "ContrastSynthesis": ["GE_aOP", "GE_aIP", "TSE_HR", "head_mask"],
    "SuperResolution": ["TSE_thick", "TSE_HR"],
}


def simulate_sample() -> dict[str, Any]:
    """The simulated subject as SimpleITK images (GE echoes, thick and true TSE, masks)."""
    from mrsynth.simulate import bundled_phantom, simulate

    (i0, i1), (j0, j1), (k0, k1) = SAMPLE_CROP
    return simulate(bundled_phantom()[i0:i1, j0:j1, k0:k1], "brainweb", seed=SAMPLE_SEED)


def make_sample(out_dir: str | Path) -> dict[str, Path]:
    """Write the sample volumes as compressed NRRD (what SampleData downloads)."""
    from mrsynth.volume_io import write_volume

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sample = simulate_sample()
    names = sorted({name for names in MODULE_SAMPLES.values() for name in names})
    return {name: write_volume(sample[name], out / f"MRSynth_{name}.nrrd") for name in names}


def load_sample(scene: Any) -> dict[str, Any]:
    """The sample simulated in memory and added to ``scene`` as volume nodes (label map for the mask)."""
    from .volumes import add_volume

    sample = simulate_sample()
    names = sorted({name for names in MODULE_SAMPLES.values() for name in names})
    return {name: add_volume(scene, sample[name], f"MRSynth_{name}", labels=name.endswith("mask")) for name in names}


def register(module: str) -> None:
    """Register the module's sample with Slicer's SampleData (needs the published files' SHA256)."""
    import SampleData

    names = MODULE_SAMPLES[module]
    icon = Path(__file__).resolve().parents[1] / module / "Resources" / "Icons" / f"{module}.png"
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="MRSynth",
        sampleName=f"MRSynth {module} sample",
        uris=[f"{SAMPLE_URL}MRSynth_{name}.nrrd" for name in names],
        fileNames=[f"MRSynth_{name}.nrrd" for name in names],
        nodeNames=[f"MRSynth_{name}" for name in names],
        checksums=[f"SHA256:{SAMPLE_SHA256[name]}" for name in names],
        thumbnailFileName=str(icon),
        loadFileType="VolumeFile",
    )
