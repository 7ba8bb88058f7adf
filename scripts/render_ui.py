"""Load the modules' .ui files with Qt's own UI loader (PySide6, no Slicer) and save panel screenshots.

    QT_QPA_PLATFORM=offscreen python scripts/render_ui.py [OUT_DIR]   (default Resources/Screenshots)

Slicer's custom widgets do not exist outside Slicer, so they are mapped to plain Qt stand-ins for
loading and rendering only: ``qMRMLWidget`` -> ``QWidget``, ``ctkCollapsibleButton`` -> ``QGroupBox``
(its text as the title) and ``qMRMLNodeComboBox`` -> ``QComboBox`` showing the node a user would
pick (the sample's names). Everything else, dynamic properties such as ``SlicerParameterName``
included, is loaded as written. The model list and card come from the real registry.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = {"ContrastSynthesis": "contrast-synthesis", "SuperResolution": "super-resolution"}
STAND_INS = {"qMRMLWidget": "QWidget", "ctkCollapsibleButton": "QGroupBox", "qMRMLNodeComboBox": "QComboBox"}
EXAMPLE_NODES = {
    "inputSelector1": "MRSynth_GE_aOP",
    "inputSelector2": "MRSynth_GE_aIP",
    "inputSelector": "MRSynth_TSE_thick",
    "referenceSelector": "MRSynth_TSE_HR",
    "maskSelector": "MRSynth_head_mask",
    "outputSelector": "Create new volume",
    "outputLRSelector": "Create new volume",
}


def ui_path(module: str) -> Path:
    return ROOT / module / "Resources" / "UI" / f"{module}.ui"


def with_stand_ins(path: Path) -> bytes:
    """The .ui text with Slicer's custom widgets replaced by the plain Qt classes above."""
    tree = ET.parse(path)
    root = tree.getroot()
    for widget in root.iter("widget"):
        original = widget.get("class")
        if original in STAND_INS:
            widget.set("class", STAND_INS[original])
            if original == "ctkCollapsibleButton":
                for prop in widget.findall("property"):
                    if prop.get("name") == "text":
                        prop.set("name", "title")
                    elif prop.get("name") == "collapsed":
                        widget.remove(prop)
            elif original == "qMRMLNodeComboBox":
                for prop in list(widget.findall("property")):
                    if prop.get("name") != "toolTip" and prop.get("stdset") != "0":
                        widget.remove(prop)
    for tag in ("customwidgets", "connections"):
        for element in root.findall(tag):
            root.remove(element)
    return ET.tostring(root, encoding="utf-8")


def load_ui(path: Path):  # -> PySide6.QtWidgets.QWidget
    """The panel as PySide6 widgets (a QApplication must exist)."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtUiTools import QUiLoader

    data = QByteArray(with_stand_ins(path))  # kept alive while the loader reads it
    buffer = QBuffer(data)
    buffer.open(QIODevice.ReadOnly)
    widget = QUiLoader().load(buffer)
    if widget is None:
        raise RuntimeError(f"Qt's UI loader could not load {path}")
    return widget


def fill_example(panel, task: str) -> None:
    """Put what a user sees into the panel: the registry's models and card, example nodes, devices."""
    from PySide6.QtWidgets import QComboBox, QLabel, QPushButton, QTextBrowser

    sys.path.insert(0, str(ROOT))
    from MRSynthSlicerLib.models import model_choices, no_model_message

    choices = model_choices(task)
    combo = panel.findChild(QComboBox, "modelComboBox")
    for choice in choices:
        combo.addItem(choice.label())
    state = panel.findChild(QLabel, "modelStateLabel")
    state.setText(choices[0].state if choices else no_model_message(task))
    panel.findChild(QPushButton, "downloadButton").setEnabled(bool(choices) and not choices[0].ready)
    card = panel.findChild(QTextBrowser, "modelCardBrowser")
    card.setMarkdown(choices[0].card if choices else "")
    card.setMaximumHeight(160)
    if choices and task == "contrast-synthesis":
        for i, name in enumerate(choices[0].inputs, start=1):
            panel.findChild(QLabel, f"inputLabel{i}").setText(f"{name}:")
        for i in range(len(choices[0].inputs) + 1, 5):
            panel.findChild(QLabel, f"inputLabel{i}").hide()
            panel.findChild(QComboBox, f"inputSelector{i}").hide()
    spacing = panel.findChild(QLabel, "targetSpacingLabel")
    if spacing is not None:
        spacing.setText("from the selected model" if not choices else "x".join(map(str, choices[0].voxel_size)))
    for name, text in EXAMPLE_NODES.items():
        selector = panel.findChild(QComboBox, name)
        if selector is not None and selector.isVisibleTo(panel):
            selector.addItem(text)
    panel.findChild(QComboBox, "deviceComboBox").addItems(["auto", "cpu"])
    panel.findChild(QLabel, "statusLabel").setText("")
    for hidden in ("progressBar", "dependenciesButton"):
        panel.findChild(object, hidden).hide()


def main(argv: list[str]) -> int:
    from PySide6.QtWidgets import QApplication

    out = Path(argv[0]) if argv else ROOT / "Resources" / "Screenshots"
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication(["render_ui"])
    for module, task in MODULES.items():
        panel = load_ui(ui_path(module))
        fill_example(panel, task)
        panel.resize(460, panel.sizeHint().height())
        panel.show()
        app.processEvents()
        path = out / f"{module}.png"
        panel.grab().save(str(path))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
