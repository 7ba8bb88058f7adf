"""The module files import and describe themselves, with a minimal stand-in for Slicer's Qt layer.

slicer-core has the real ``slicer`` package (MRML, ``slicer.util``) but not the parts that need the
application: ``qt``, ``slicer.ScriptedLoadableModule``, ``slicer.parameterNodeWrapper`` and
``slicer.app``. The stand-ins below provide only what these files touch at import and in the module
class's ``__init__``, following Slicer's documented API; the widgets themselves are checked against
the .ui files in test_slicer_ui.py and run for real in the modules' self-tests inside Slicer.
"""

from __future__ import annotations

import importlib
import sys
import types
import typing

import pytest
from slicer_support import add_extension_paths, require_slicer_core

require_slicer_core()
add_extension_paths()

import slicer  # noqa: E402


class _StandInBase:
    def __init__(self, parent=None) -> None:
        self.parent = parent


class _Validator:
    def __init__(self, *args) -> None:
        self.args = args


@pytest.fixture
def stand_ins(monkeypatch):
    """Install the stand-ins; the module files are imported fresh and removed again afterwards."""
    scripted = types.ModuleType("slicer.ScriptedLoadableModule")
    for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleTest"):
        setattr(scripted, name, type(name, (_StandInBase,), {}))
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda cls: cls
    wrapper.Choice = type("Choice", (_Validator,), {})
    wrapper.Minimum = type("Minimum", (_Validator,), {})
    wrapper.WithinRange = type("WithinRange", (_Validator,), {})
    qt = types.ModuleType("qt")
    qt.QTimer = object
    connected = []
    app = types.SimpleNamespace(connect=lambda signal, slot: connected.append((signal, slot)))
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", scripted)
    monkeypatch.setitem(sys.modules, "slicer.parameterNodeWrapper", wrapper)
    monkeypatch.setitem(sys.modules, "qt", qt)
    monkeypatch.setattr(slicer, "app", app, raising=False)
    for name in ("ContrastSynthesis", "SuperResolution", "MRSynthSlicerLib.widget"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield connected
    for name in ("ContrastSynthesis", "SuperResolution", "MRSynthSlicerLib.widget"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("module", ["ContrastSynthesis", "SuperResolution"])
def test_module_imports_and_describes_itself(stand_ins, module):
    loaded = importlib.import_module(module)
    parent = types.SimpleNamespace()
    getattr(loaded, module)(parent)
    assert parent.categories == ["MRSynth"] and parent.title and "reference" in parent.helpText
    assert stand_ins and stand_ins[0][0] == "startupCompleted()"  # sample data registered after startup
    logic = getattr(loaded, f"{module}Logic")(slicer.vtkMRMLScene())
    assert logic.MODULE_NAME == module
    hints = typing.get_type_hints(getattr(loaded, f"{module}ParameterNode"), include_extras=True)
    assert hints["preset"].__metadata__[0].args == (["fast", "paper", "smooth", "custom"],)
    assert getattr(loaded, f"{module}Widget").LOGIC_CLASS is getattr(loaded, f"{module}Logic")
