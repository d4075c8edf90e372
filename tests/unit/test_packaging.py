"""Issue 22.8: `make run` installs both distributions without a setuptools warning: the license is
declared in the SPDX string form, with a setuptools that reads it."""

from __future__ import annotations

import os
import re
import tomllib
import warnings

import pytest
from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution

from tests.conftest import ROOT

PYPROJECTS = ["pyproject.toml", "clients/python/pyproject.toml"]


@pytest.mark.parametrize("path", PYPROJECTS)
def test_the_license_is_an_spdx_string_that_setuptools_reads_without_a_warning(path):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cwd = os.getcwd()
        os.chdir((ROOT / path).parent)  # setuptools resolves readme and packages from here
        try:
            dist = apply_configuration(Distribution(), ROOT / path)
        finally:
            os.chdir(cwd)
    assert [str(w.message).split("\n")[0] for w in seen if "license" in str(w.message).lower()] == []
    assert dist.metadata.license_expression == "Apache-2.0"


@pytest.mark.parametrize("path", PYPROJECTS)
def test_the_build_asks_for_a_setuptools_that_takes_the_spdx_form(path):
    requires = tomllib.loads((ROOT / path).read_text())["build-system"]["requires"]
    (setuptools,) = [r for r in requires if r.startswith("setuptools")]
    m = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", setuptools)
    assert m is not None and int(m.group(1)) >= 77, setuptools  # PEP 639 license expressions
