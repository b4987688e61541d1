"""The README's tables that restate the code stay true to it: the built-in components (their declarations in
`compiler/builtin_components.py`) and the configuration variables (`airflow_amml.run_config.ENVIRONMENT`).
When one drifts, the failure shows the rows the README should hold."""

import re
from pathlib import Path

from airflow_amml.run_config import CONNECTION_VARIABLES, ENVIRONMENT
from compiler.builtin_components import BUILTIN_COMPONENTS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text of the README's `## title` section, up to the next `## ` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else len(README)]


def component_table() -> str:
    """The components table as the specs make it: name, kind, the module (from `impl=`), the one-line doc."""
    rows = ["| component | kind | module | what |", "|---|---|---|---|"]
    for spec in BUILTIN_COMPONENTS:
        module = spec.impl.split(":")[0].removeprefix("airflow_amml.").replace(".", "/") + ".py"
        doc = spec.doc.replace("|", "\\|")  # a `|` in a doc (`|z|`) would end the cell
        rows.append(f"| `{spec.name}` | {spec.kind.value} | `{module}` | {doc} |")
    return "\n".join(rows) + "\n"


def test_the_component_table_is_the_specs():
    expected = component_table()
    assert expected in section("Components"), f"the README's Components section should hold:\n{expected}"


def configuration_rows() -> dict[str, str]:
    """Variable → the RunConfig field its row names, from the README's Configuration table."""
    rows = {}
    for line in section("Configuration").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("`") and cells[1] != "`RunConfig` field":
            field = cells[1].strip("`")
            for variable in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]):
                rows[variable] = field
    return rows


def test_the_configuration_table_names_every_variable_and_its_field():
    expected = {variable: field for variable, (field, _) in ENVIRONMENT.items()}
    expected |= CONNECTION_VARIABLES  # read by the Airflow side into the same fields
    expected |= {"AIRFLOW__CORE__DAGS_FOLDER": "dags_folder", "AIRFLOW_HOME": "dags_folder"}
    assert configuration_rows() == expected
