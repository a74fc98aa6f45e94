"""The project ships to Dataflow workers as a wheel (or via --setup_file): one ``podtarget`` package holding every
top-level folder of the repository as a subpackage, with the schemas and model specs as package data."""

import pathlib
import subprocess
import sys
import tomllib
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = ("common", "schemas", "transforms", "pipelines", "model", "simulator", "evaluation")


def _packages_on_disk() -> set[str]:
    """Every folder under the packaged top-level folders that has an ``__init__.py``, as a dotted name."""
    found = set()
    for folder in FOLDERS:
        for init in (ROOT / folder).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                found.add("podtarget." + ".".join(init.parent.relative_to(ROOT).parts))
    return found


def test_pyproject_lists_every_package_and_maps_every_folder():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    # Data folders are listed too (setuptools warns about a folder of package data that is not a listed package).
    data = set(config["package-data"])
    assert data == {"podtarget.schemas.avro", "podtarget.model.specs"}
    assert not data & _packages_on_disk()  # folders of data, no code
    assert set(config["packages"]) == _packages_on_disk() | data
    assert config["package-dir"] == {f"podtarget.{folder}": folder for folder in FOLDERS}


def test_the_type_checker_sees_every_folder():
    makefile = (ROOT / "Makefile").read_text()
    line = next(x for x in makefile.splitlines() if x.startswith("PACKAGE_FOLDERS"))
    assert set(line.split(":=", 1)[1].split()) == set(FOLDERS)


@pytest.mark.slow
def test_wheel_installs_one_podtarget_package_with_the_schemas(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(tmp_path)]
        + [str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    wheel = next(tmp_path.glob("podtarget-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in _packages_on_disk():
        assert package.replace(".", "/") + "/__init__.py" in names, package
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"podtarget"}
    assert "podtarget/schemas/avro/ad_impression.avsc" in names
    assert "podtarget/model/specs/podtarget.toml" in names
    assert "podtarget/simulator/behaviour.py" in names
