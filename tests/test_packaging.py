"""The project ships to Dataflow workers as a wheel (or via --setup_file): it must contain every package."""

import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_every_package_and_the_schemas(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    wheel = next(tmp_path.glob("podtarget-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("schemas", "transforms", "pipelines", "model", "simulator", "evaluation"):
        assert f"{package}/__init__.py" in names, package
    assert "schemas/avro/ad_impression.avsc" in names
    assert "simulator/behaviour.py" in names
    assert not any(n.startswith("tests/") for n in names)
