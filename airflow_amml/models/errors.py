"""The errors of models: a definition that is not valid (located in its YAML file like every AMML error), and
data or a model file a model cannot take (raised while training or predicting, named by the component)."""

from __future__ import annotations

from airflow_amml.runtime.errors import PipelineError
from compiler.errors import SourceError


class AmmlModelError(SourceError):
    """A model definition (YAML) that is not valid: syntax, unknown names, wrong types or ranges, structure."""

    label = "model error"


class ModelDataError(PipelineError, ValueError):
    """Records or a model file that a model cannot take (missing or non-numeric columns, too few rows, a file
    that is not this definition's model). A ValueError too, for callers that check the builtin."""

    label = "model data error"
