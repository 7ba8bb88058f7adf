"""MRSynth: deep-learning MRI contrast synthesis and super-resolution (headless library)."""

from .errors import Cancelled, MRSynthError

__version__ = "0.1.0"

__all__ = ["Cancelled", "MRSynthError", "__version__"]
