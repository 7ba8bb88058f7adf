"""The extension's build description: every file of each module is listed, and the library stays headless.

The CMake files are parsed here; where ``cmake`` is installed they are also configured against a
minimal stand-in for Slicer's CMake package (``Testing/fake_slicer/SlicerConfig.cmake``), whose
macros check that each listed file exists and record what each module installs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from slicer_support import MODULES, ROOT

LIBRARY_FORBIDDEN = re.compile(r"^\s*(import|from)\s+(slicer|qt|ctk|vtk|PythonQt|SampleData|Elastix)\b", re.M)


def cmake_list(text: str, variable: str) -> list[str]:
    """The items of ``set(VARIABLE ...)`` with ``${MODULE_NAME}`` expanded."""
    name = re.search(r"set\(MODULE_NAME (\w+)\)", text)
    body = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S).group(1)
    items = [item for item in body.split() if not item.startswith("#")]
    return [item.replace("${MODULE_NAME}", name.group(1)) if name else item for item in items]


def files_under(folder, pattern: str) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob(pattern) if "__pycache__" not in path.parts}


@pytest.mark.parametrize("module", MODULES)
def test_module_cmake_lists_every_script_and_resource(module):
    folder = ROOT / module
    text = (folder / "CMakeLists.txt").read_text()
    assert set(cmake_list(text, "MODULE_PYTHON_SCRIPTS")) == files_under(folder, "*.py")
    resources = {str(p.relative_to(folder)) for p in (folder / "Resources").rglob("*") if p.is_file()}
    assert set(cmake_list(text, "MODULE_PYTHON_RESOURCES")) == resources
    assert re.search(r"slicerMacroBuildScriptedModule\((.*?)WITH_GENERIC_TESTS", text, re.S)
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


def test_shared_package_cmake_lists_every_script():
    text = (ROOT / "MRSynthSlicerLib" / "CMakeLists.txt").read_text()
    assert set(cmake_list(text, "MRSYNTH_SLICER_LIB_SCRIPTS")) == files_under(ROOT / "MRSynthSlicerLib", "*.py")
    assert "mrsynth/*" in text  # the whole library, resources included, beside the modules


def test_top_level_cmake_describes_the_extension():
    text = (ROOT / "CMakeLists.txt").read_text()
    for variable in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS"):
        assert re.search(rf"set\(EXTENSION_{variable} ", text), variable
    depends = re.search(r'set\(EXTENSION_DEPENDS "(.*?)"\)', text).group(1).split()
    assert depends == ["PyTorch", "SlicerElastix"]
    assert re.findall(r"add_subdirectory\((\w+)\)", text) == ["MRSynthSlicerLib", *MODULES]
    for url in re.search(r'set\(EXTENSION_SCREENSHOTURLS "(.*?)"\)', text).group(1).split():
        assert (ROOT / url.split("/main/")[1]).is_file(), url
    assert (ROOT / re.search(r'ICONURL ".*?/main/(.*?)"', text).group(1)).is_file()


def test_extensions_index_entry():
    entry = json.loads((ROOT / "Resources" / "ExtensionsIndex" / "MRSynth.json").read_text())
    assert entry["build_dependencies"] == ["PyTorch", "SlicerElastix"]
    assert entry["category"] == "MRSynth" and entry["scm_url"].endswith(".git")


def test_screenshots_are_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for module in MODULES:
        assert f"Resources/Screenshots/{module}.png" in readme
        assert (ROOT / "Resources" / "Screenshots" / f"{module}.png").is_file()


def test_the_library_never_imports_slicer_or_qt():
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "mrsynth").rglob("*.py")
        if LIBRARY_FORBIDDEN.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_cmake_configures_against_a_slicer_stand_in(tmp_path):
    build = tmp_path / "build"
    result = subprocess.run(
        [
            "cmake",
            "-S",
            str(ROOT),
            "-B",
            str(build),
            f"-DSlicer_DIR={ROOT / 'Testing' / 'fake_slicer'}",
            "-DBUILD_TESTING=ON",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    recorded = (build / "slicer_stand_in.txt").read_text().splitlines()
    for module in MODULES:
        assert f"module {module} tests=ON" in recorded
        assert f"unittest {module}.py" in recorded
    assert any(
        line.startswith("python-scripts MRSynthLibraries ") and "mrsynth/synthesis.py" in line for line in recorded
    )
