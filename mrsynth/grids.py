"""Image grids derived from others: the thick-slice grid of a High-to-low model's low-resolution output."""

from __future__ import annotations

import SimpleITK as sitk

from .highlow import SLICE_FACTOR
from .volume_io import paper_index_axis


def thick_grid(reference: sitk.Image, factor: int = SLICE_FACTOR, paper_axis: int = 2) -> sitk.Image:
    """An empty float32 image whose slices are ``factor`` of ``reference``'s thick along one paper axis.

    Thick slice j averages reference slices factor*j .. factor*j + factor - 1, so its centre lies at
    continuous index (factor - 1) / 2 + factor*j of the reference (1.5 HR spacings from slice 4j for
    factor 4); size is rounded up (ceil), so a last partial group still gets a thick slice. Spacing
    grows by ``factor`` along that axis; direction is unchanged.
    """
    axis = paper_index_axis(reference, paper_axis)
    size = list(reference.GetSize())
    size[axis] = -(-size[axis] // factor)
    spacing = list(reference.GetSpacing())
    spacing[axis] *= factor
    index = [0.0, 0.0, 0.0]
    index[axis] = (factor - 1) / 2
    image = sitk.Image(size, sitk.sitkFloat32)
    image.SetSpacing(spacing)
    image.SetDirection(reference.GetDirection())
    image.SetOrigin(reference.TransformContinuousIndexToPhysicalPoint(index))
    return image
