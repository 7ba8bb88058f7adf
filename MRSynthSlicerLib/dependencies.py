"""Python packages the modules need inside Slicer, and installing them on request (never at import).

PyTorch comes through the PyTorch extension's ``PyTorchUtils`` (it picks the CUDA or CPU build for
the machine); the rest through Slicer's pip helper. Both ask the user first.
"""

from __future__ import annotations

import importlib.util

TORCH_REQUIREMENT = ">=2.1"
# Import name -> requirement: what the worker imports (mrsynth's own dependencies, less training's).
PACKAGES = {
    "SimpleITK": "SimpleITK>=2.3",
    "numpy": "numpy>=1.24",
    "scipy": "scipy>=1.10",
    "matplotlib": "matplotlib>=3.7",
    "tqdm": "tqdm>=4.60",
    "yaml": "pyyaml>=6.0",
}


def missing() -> list[str]:
    """Import names that cannot be found now (``torch`` first)."""
    names = ["torch", *PACKAGES]
    return [name for name in names if importlib.util.find_spec(name) is None]


def missing_message(names: list[str]) -> str:
    return (
        f"MRSynth needs Python packages that are not installed: {', '.join(names)}. Press 'Install dependencies' "
        "(PyTorch comes through the PyTorch extension) and restart Slicer if asked"
    )


def install(ask: bool = True) -> bool:
    """Install what is missing inside Slicer; False when the user declined or PyTorchUtils is absent."""
    import slicer

    names = missing()
    others = [PACKAGES[name] for name in names if name != "torch"]
    if others:
        if ask and not slicer.util.confirmOkCancelDisplay(f"Install {', '.join(others)} with pip?"):
            return False
        slicer.util.pip_install(others)
    if "torch" in names:
        try:
            import PyTorchUtils
        except ImportError:
            slicer.util.errorDisplay("PyTorch is missing: install the PyTorch extension from the Extensions Manager")
            return False
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
            askConfirmation=ask, torchVersionRequirement=TORCH_REQUIREMENT
        )
        if torch is None:
            return False
    return not missing()
