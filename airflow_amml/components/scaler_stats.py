"""Scaler statistics as they travel between components: on the batches, and stored with a model.

A scaler attaches its statistics to every batch it emits (``batch.attrs[SCALER_ATTR]``: the scaler's kind
and each column's statistics); ``train_lstm`` stores them with the model version it registers, and
``minmax_scaler model=...`` / ``minmax_inverse model=...`` read them back with :func:`stored_scaler`;
`source warmup_for=...` reads how many records a version's forecasts read with :func:`stored_history`.
Both the scalers and the model components import this module, and it imports neither.

:func:`run_model_ref` is how every component that reads a registered model (`lstm`, the scalers,
`residual_detector model=...`) names it: in a fanned-out run, the item's own model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from airflow_amml.run_config import RunConfig
from airflow_amml.sdk import PipelineError

SCALER_ATTR = "amml.scaler"

log = logging.getLogger(__name__)


def run_model_ref(component: str, model_ref: str, config: RunConfig, param: str = "model") -> str:
    """The reference a component reads in this run: ``model_ref`` itself, or in a fanned-out run the item's
    model (`nab@champion` → `nab.<item slug>@champion`, as `train_lstm` registered it in a fan-out); then the
    version it was pinned to when the run started (``config.model_pins``: `ett@champion` → `ett/3`)."""
    ref = model_ref
    if config.item is not None:
        from airflow_amml.registry.errors import RegistryError
        from airflow_amml.registry.names import item_ref

        try:
            ref = item_ref(model_ref, config.item[1])
        except RegistryError as exc:
            raise PipelineError(f"`{component} {param}={model_ref!r}`: {exc.message}", hint=exc.hint) from None
    return config.model_pins.get(ref, ref)


def pin_models(pipeline: Any, run_params: Mapping[str, Any], config: RunConfig) -> RunConfig:
    """``config`` with each registered model the pipeline's components read (their ``reads_models``
    parameters: `lstm model=`, the scalers', `source warmup_for=`…) resolved once, now, to the version it
    names (``model_pins``): an alias moved while the run goes on (a retraining promoting) cannot give the
    scaler one version and the model another. A reference that does not resolve is left to the component,
    whose error says what to do; a pipeline that reads no registered model does not load the registry."""
    from airflow_amml.runtime.plan import make_plan
    from compiler import vm

    wanted = []
    for stage in make_plan(pipeline):
        if not stage.spec.reads_models or stage.callback is None:
            continue
        try:
            params = vm.eval_static(stage.callback, dict(run_params))
            wanted += [
                run_model_ref(stage.name, params[name], config, param=name)
                for name in stage.spec.reads_models
                if isinstance(params.get(name), str)
            ]
        except Exception:  # a missing run parameter…: the component evaluates them again and names what is wrong
            continue
    if not wanted:
        return config
    pins = dict(config.model_pins)
    try:
        from airflow_amml.registry import ModelRegistry

        registry = ModelRegistry.from_config(config)
        for ref in dict.fromkeys(wanted):
            with contextlib.suppress(Exception):  # not found, not ready: the component's error says what to do
                pins[ref] = registry.resolve(ref).ref
    # broad on purpose: whatever fails here (an unreachable registry, one migrated by a newer AMML) fails again in
    # the component that reads the model, which reports it with its file, line and hint
    except Exception:
        log.debug("could not pin the run's models; each component resolves its own", exc_info=True)
    return dataclasses.replace(config, model_pins=pins)


def fanout_hint(model_ref: str, config: RunConfig, hint: str | None) -> str | None:
    """A not-found model's hint, saying in a fanned-out run which per-item model was looked for and why."""
    if config.item is None:
        return hint
    variable, value = config.item
    said = (
        f"in a pipeline fanned out over `{variable}`, model={model_ref!r} reads the model of the item "
        f"{value!r}: {run_model_ref('model', model_ref, config)}, which `train_lstm` registers when it runs "
        "fanned out over the same items"
    )
    return f"{said}; {hint}" if hint else said


def stored_scaler(model_ref: str, config: RunConfig) -> dict[str, Any]:
    """The scaler statistics stored with a registered model version (for `minmax_scaler model=...`; in a
    fanned-out run the item's model, :func:`run_model_ref`)."""
    # The registry (SQLAlchemy, the artifact stores) is loaded only by a pipeline that asks for stored
    # statistics, not by every pipeline that scales.
    from airflow_amml.registry import ModelRegistry, RegistryError

    registry = ModelRegistry.from_config(config)
    try:
        entry = registry.resolve(run_model_ref("scaler", model_ref, config))
    except RegistryError as exc:
        raise PipelineError(
            f"scaler statistics of {model_ref!r}: {exc.message}", hint=fanout_hint(model_ref, config, exc.hint)
        ) from exc
    if not entry.scaler:
        raise PipelineError(f"model {entry.ref} was registered without scaler statistics")
    return entry.scaler


def stored_history(model_ref: str, config: RunConfig) -> int:
    """The records one forecast of a registered model version reads (its definition's window, and the past its
    seasonal means reach back to): what `source warmup_for=...` reads before the window, less one."""
    from airflow_amml.models.spec import parse_model_spec
    from airflow_amml.registry import ModelRegistry, RegistryError

    registry = ModelRegistry.from_config(config)
    try:
        entry = registry.resolve(run_model_ref("source", model_ref, config, param="warmup_for"))
        text = registry.get_definition(entry.definition)
    except RegistryError as exc:
        raise PipelineError(
            f"`source warmup_for={model_ref!r}`: {exc.message}", hint=fanout_hint(model_ref, config, exc.hint)
        ) from exc
    return parse_model_spec(text, entry.definition).training.history  # checked when it was registered
