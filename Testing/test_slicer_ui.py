"""Each module's .ui file, loaded with Qt's own UI loader (PySide6, offscreen), against the module code.

Every widget the module code touches (``self.ui.<name>``) must exist with the expected class, and
every parameter of the module's parameter node must be bound to exactly one widget through
``SlicerParameterName``, of a class that ``parameterNodeWrapper`` can connect to that type. Slicer's
own widgets are replaced by plain Qt stand-ins for loading (``scripts/render_ui.py`` says which).
"""

from __future__ import annotations

import ast
import os
import re
import sys
import xml.etree.ElementTree as ET

import pytest
from slicer_support import MODULES, ROOT, require

require("PySide6")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(ROOT / "scripts"))

import render_ui  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

# What the code expects each widget to be (Slicer class names, as in the .ui file).
EXPECTED_CLASSES = {
    "applyButton": "QPushButton",
    "downloadButton": "QPushButton",
    "importModelButton": "QPushButton",
    "dependenciesButton": "QPushButton",
    "modelComboBox": "QComboBox",
    "deviceComboBox": "QComboBox",
    "registrationPresetComboBox": "QComboBox",
    "presetComboBox": "QComboBox",
    "modelStateLabel": "QLabel",
    "statusLabel": "QLabel",
    "targetSpacingLabel": "QLabel",
    "modelCardBrowser": "QTextBrowser",
    "progressBar": "QProgressBar",
    "registerCheckBox": "QCheckBox",
    "flipAverageCheckBox": "QCheckBox",
    "batchSizeSpinBox": "QSpinBox",
    "referenceSelector": "qMRMLNodeComboBox",
    "maskSelector": "qMRMLNodeComboBox",
    "boneMaskSelector": "qMRMLNodeComboBox",
    "inputSelector": "qMRMLNodeComboBox",
    "outputSelector": "qMRMLNodeComboBox",
    "outputLRSelector": "qMRMLNodeComboBox",
}
MRML_TYPES = {
    "vtkMRMLScalarVolumeNode": {"vtkMRMLScalarVolumeNode"},
    "vtkMRMLVolumeNode": {"vtkMRMLScalarVolumeNode", "vtkMRMLLabelMapVolumeNode"},
}


@pytest.fixture(scope="module")
def app():
    return QApplication.instance() or QApplication(["test"])


def _code(module: str) -> str:
    return (ROOT / module / f"{module}.py").read_text() + (ROOT / "MRSynthSlicerLib" / "widget.py").read_text()


def used_widgets(module: str) -> set[str]:
    """Widget names the module code uses: ``ui.<name>`` and ``f"<name>{i}"`` for i in 1..4."""
    code = _code(module)
    names = set(re.findall(r"\bui\.([A-Za-z]\w*)", code))
    for stem in re.findall(r'getattr\(self\.ui, f"(\w+)\{i\}"\)', code):
        names |= {f"{stem}{i}" for i in range(1, 5)}
    return names - {"__dict__"}


def declared(module: str) -> dict[str, ET.Element]:
    root = ET.parse(render_ui.ui_path(module)).getroot()
    return {w.get("name"): w for w in root.iter("widget")}


def parameters(module: str) -> dict[str, str]:
    """The parameter node's fields and their annotation source, from the module's code."""
    tree = ast.parse((ROOT / module / f"{module}.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == f"{module}ParameterNode")
    return {s.target.id: ast.unparse(s.annotation) for s in cls.body if isinstance(s, ast.AnnAssign)}


def _property(element: ET.Element, name: str) -> ET.Element | None:
    return next((p for p in element.findall("property") if p.get("name") == name), None)


@pytest.mark.parametrize("module", MODULES)
def test_every_widget_the_code_uses_exists_with_its_class(app, module):
    panel = render_ui.load_ui(render_ui.ui_path(module))
    widgets = declared(module)
    for name in sorted(used_widgets(module)):
        assert name in widgets, f"{module}.ui lacks {name}, which the module code uses"
        stem = re.sub(r"\d$", "", name)
        original = widgets[name].get("class")
        assert original == EXPECTED_CLASSES.get(name, EXPECTED_CLASSES.get(stem, original)), name
        loaded = panel.findChild(QWidget, name)
        assert loaded is not None, f"Qt's loader did not create {name}"
        assert loaded.metaObject().className() == render_ui.STAND_INS.get(original, original)


@pytest.mark.parametrize("module", MODULES)
def test_every_parameter_is_bound_to_one_fitting_widget(app, module):
    panel = render_ui.load_ui(render_ui.ui_path(module))
    widgets = declared(module)
    bound: dict[str, list[str]] = {}
    for widget in panel.findChildren(QWidget):
        value = widget.property("SlicerParameterName")
        if value:
            bound.setdefault(value, []).append(widget.objectName())
    fields = parameters(module)
    unbound = {"model"}  # filled from the registry by code, saved by code
    assert set(bound) == set(fields) - unbound
    for field, annotation in fields.items():
        if field in unbound:
            continue
        assert len(bound[field]) == 1, f"{field} is bound to {bound[field]}"
        element = widgets[bound[field][0]]
        cls = element.get("class")
        if annotation in MRML_TYPES:
            assert cls == "qMRMLNodeComboBox"
            types = {s.text for s in _property(element, "nodeTypes").iter("string")}
            assert types <= MRML_TYPES[annotation] and types, (field, types)
        elif "Choice" in annotation:
            assert cls == "QComboBox"
            choices = re.search(r"Choice\(\[(.*)\]\)", annotation).group(1)
            items = [item.find("property/string").text for item in element.findall("item")]
            assert items == [c.strip().strip("'\"") for c in choices.split(",")]
        elif annotation == "bool":
            assert cls == "QCheckBox"
        elif "int" in annotation:
            assert cls == "QSpinBox"
        elif "float" in annotation:
            assert cls == "QDoubleSpinBox"  # the exact class parameterNodeWrapper connects to a float
            low, high = (float(v) for v in re.search(r"WithinRange\((.*), (.*)\)", annotation).groups())
            assert float(_property(element, "minimum").findtext("double")) == low
            assert float(_property(element, "maximum").findtext("double")) == high
        else:
            pytest.fail(f"no widget check for {field}: {annotation}")


@pytest.mark.parametrize("module", MODULES)
def test_scene_reaches_every_node_selector(module):
    """qMRMLNodeComboBox needs the scene: each gets it from the panel's mrmlSceneChanged signal."""
    root = ET.parse(render_ui.ui_path(module)).getroot()
    selectors = {w.get("name") for w in root.iter("widget") if w.get("class") == "qMRMLNodeComboBox"}
    connected = {c.findtext("receiver") for c in root.iter("connection") if c.findtext("slot").startswith("setMRML")}
    assert selectors and selectors == connected
