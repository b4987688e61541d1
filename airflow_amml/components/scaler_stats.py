"""Scaler statistics as they travel between components: on the batches, and stored with a model.

A scaler attaches its statistics to every batch it emits (``batch.attrs[SCALER_ATTR]``: the scaler's kind
and each column's statistics); ``train_lstm`` stores them with the model version it registers, and
``minmax_scaler model=...`` / ``minmax_inverse model=...`` read them back with :func:`stored_scaler`.
Both the scalers and the model components import this module, and it imports neither.
"""

from __future__ import annotations

from typing import Any

from airflow_amml.run_config import RunConfig
from airflow_amml.sdk import PipelineError

SCALER_ATTR = "amml.scaler"


def stored_scaler(model_ref: str, config: RunConfig) -> dict[str, Any]:
    """The scaler statistics stored with a registered model version (for `minmax_scaler model=...`)."""
    # The registry (SQLAlchemy, the artifact stores) is loaded only by a pipeline that asks for stored
    # statistics, not by every pipeline that scales.
    from airflow_amml.registry import ModelRegistry, RegistryError

    registry = ModelRegistry.from_config(config)
    try:
        entry = registry.resolve(model_ref)
    except RegistryError as exc:
        raise PipelineError(f"scaler statistics of {model_ref!r}: {exc.message}", hint=exc.hint) from exc
    if not entry.scaler:
        raise PipelineError(f"model {entry.ref} was registered without scaler statistics")
    return entry.scaler
