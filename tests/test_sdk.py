"""The component SDK: a third-party component written only against `airflow_amml.sdk` runs like a built-in,
and every built-in declaration names a class that exists and has the declared kind."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_amml.runtime.executor import run_pipeline
from airflow_amml.runtime.plan import load_component_class
from airflow_amml.sdk import AbstractComponent, AbstractProgress, ComponentSpec, Kind, PipelineError, param
from compiler import AmmlError, ComponentRegistry, ProgramCache, compile_source
from compiler.builtin_components import BUILTIN_COMPONENTS

MODES = ["single", "multiprocess"]
COMPONENTS = Path(__file__).resolve().parents[1] / "airflow_amml" / "components"
# the modules whose names airflow_amml.sdk re-exports
BEHIND_THE_SDK = {
    "airflow_amml.runtime.batch_vm",
    "airflow_amml.runtime.columns",
    "airflow_amml.runtime.component",
    "airflow_amml.runtime.errors",
    "compiler.component_spec",
    "compiler.components",
    "compiler.vm",
}


# ---- the README's example: the whole of a third-party component -----------------------------------


class Clip(AbstractProgress):
    # `clip col=..., high=..., cond=...`: cap `col` at `high` on the records where `cond` holds
    spec = ComponentSpec(
        "clip",
        Kind.PROGRESS,
        "Cap a column at a value where a condition holds.",
        (
            param("col", "str", "column to cap"),
            param("high", "expr", "the cap, per record"),
            param("cond", "cond", "records to cap (null counts as false)", True),
        ),
    )

    def process(self, batch):
        col = self.params["col"]
        if col not in batch.columns:
            raise PipelineError(
                f"`clip`: no column `{col}`; the records have {list(batch.columns)}", hint="name one of the columns"
            )
        out = batch.copy()
        capped = out[col].clip(upper=self.column(batch, "high"))
        out[col] = capped.where(self.condition(batch), out[col])
        return out


def registry_with(cls: type) -> ComponentRegistry:
    """The built-ins plus `cls`, declared as the `amml.components` entry point declares it (its spec, with the
    class as the implementation)."""
    spec = dataclasses.replace(cls.spec, impl=f"{cls.__module__}:{cls.__qualname__}")
    return ComponentRegistry((*BUILTIN_COMPONENTS, spec), load_entry_points=False)


def run(text: str, mode: str) -> None:
    registry = registry_with(Clip)
    program = compile_source(text, "sdk.amml", registry=registry, cache=ProgramCache())
    run_pipeline(program.pipelines[0], mode=mode, registry=registry)


@pytest.mark.parametrize("mode", MODES)
def test_third_party_component_runs_in_both_modes(tmp_path, mode):
    out = tmp_path / "clipped.csv"
    run(
        "normalsource col='v', count=300, seed=4 | clip col='v', high=abs(v) / 2 + 0.1, cond=v < 1"
        f" | csv_sink path='{out}'",
        mode,
    )
    v = np.random.default_rng(4).normal(0, 1, 300)
    expected = np.where(v < 1, np.minimum(v, np.abs(v) / 2 + 0.1), v)
    assert np.allclose(pd.read_csv(out)["v"], expected)


@pytest.mark.parametrize("mode", MODES)
def test_third_party_component_defaults_and_constants(tmp_path, mode):
    out = tmp_path / "capped.csv"
    run(f"normalsource col='v', count=50, seed=2 | clip col='v', high=0.5 | csv_sink path='{out}'", mode)
    assert np.allclose(pd.read_csv(out)["v"], np.minimum(np.random.default_rng(2).normal(0, 1, 50), 0.5))


@pytest.mark.parametrize("mode", MODES)
def test_third_party_component_error_names_it(mode):
    with pytest.raises(PipelineError) as info:
        run("normalsource col='v', count=5 | clip col='w', high=1 | print", mode)
    assert "`clip`" in str(info.value) and "no column `w`" in str(info.value)


def test_third_party_component_is_checked_by_the_compiler():
    with pytest.raises(AmmlError, match="`clip` has no parameter `hgh`"):
        compile_source("normalsource | clip col='v', hgh=1 | print", registry=registry_with(Clip), cache=ProgramCache())


# ---- the built-ins: their declarations in compiler/ and their classes in airflow_amml/components ---


@pytest.mark.parametrize("spec", BUILTIN_COMPONENTS, ids=lambda spec: spec.name)
def test_builtin_impl_imports_and_has_the_declared_kind(spec):
    cls = load_component_class(spec)
    assert issubclass(cls, AbstractComponent), f"{spec.impl} is no component class"
    assert cls.kind == spec.kind, f"`{spec.name}` is declared {spec.kind.value}, but {spec.impl} is {cls.kind.value}"


@pytest.mark.parametrize("path", sorted(COMPONENTS.glob("*.py")), ids=lambda path: path.name)
def test_builtins_are_written_against_the_sdk(path):
    """The built-ins are the examples: they reach the component API only through `airflow_amml.sdk`."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    bypassing = sorted(imported & BEHIND_THE_SDK)
    assert not bypassing, f"{path.name} imports {bypassing}; import them from airflow_amml.sdk"


def test_the_readme_shows_this_very_component():
    """The README's "Writing a component" example is the Clip tested here, not a copy that could drift."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("from airflow_amml.sdk import AbstractProgress")
    block = readme[start : readme.index("```", start)]
    shown = next(n for n in ast.parse(block).body if isinstance(n, ast.ClassDef) and n.name == "Clip")
    here = next(
        n for n in ast.parse(Path(__file__).read_text()).body if isinstance(n, ast.ClassDef) and n.name == "Clip"
    )
    assert ast.dump(shown) == ast.dump(here)
