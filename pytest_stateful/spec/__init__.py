"""Declarative specs: `*.stateful.yaml` files and the `@pytest.mark.stateful(...)` marker."""

from pytest_stateful.errors import SpecError
from pytest_stateful.spec.loader import Spec, Step, load_file, schema

__all__ = ["Spec", "SpecError", "Step", "load_file", "schema"]
