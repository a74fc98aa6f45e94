"""Shim so Dataflow's ``--setup_file=./setup.py`` can package the project; metadata lives in pyproject.toml."""

from setuptools import setup

setup()
