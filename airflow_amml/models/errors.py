"""The error of the model language (its own label; located like every AMML error)."""

from __future__ import annotations

from compiler.errors import AmmlError


class AmmlModelError(AmmlError):
    """A model definition (YAML) that is not valid: syntax, unknown names, wrong types or ranges, structure."""

    label = "model error"
