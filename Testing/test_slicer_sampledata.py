"""The one-click sample: simulated deterministically, loaded as nodes, files matching their SHA256."""

from __future__ import annotations

import pytest
from slicer_support import add_extension_paths, require_slicer_core

add_extension_paths()

from mrsynth.models import sha256_of  # noqa: E402
from MRSynthSlicerLib import sampledata  # noqa: E402


def test_sample_loads_as_nodes():
    require_slicer_core()
    import slicer

    nodes = sampledata.load_sample(slicer.vtkMRMLScene())
    assert set(nodes) == {name for names in sampledata.MODULE_SAMPLES.values() for name in names}
    assert nodes["head_mask"].IsA("vtkMRMLLabelMapVolumeNode")
    assert nodes["GE_aOP"].GetImageData().GetDimensions() == (136, 112, 96)


@pytest.mark.slow
def test_sample_files_match_their_published_sha256(tmp_path):
    """The files are reproducible with the pinned numpy/SimpleITK; a new version may change the bytes."""
    for name, path in sampledata.make_sample(tmp_path).items():
        assert sha256_of(path) == sampledata.SAMPLE_SHA256[name], name
