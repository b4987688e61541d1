"""`train_lstm` and `lstm`: Keras models defined in YAML, trained on the stream and served from the registry.

TensorFlow is imported only when one of these components opens (through `airflow_amml.models.keras_builder`).

The paper's contract (Fig. 12, 14): `train_lstm model="ett:0.1"` loads the definition `ett:0.1` from the
registry; a definition found in a model file (the dags folder's `models/`, or `$AMML_MODEL_PATH`) is
registered first, so the file stays the source of truth for review. The trained model is registered as the
next version of `ett` with the scaler statistics it was trained with and the dynamic threshold of its
one-step errors (for `residual_detector model=...`); `lstm model="ett@champion"` loads a
version once, verifies its checksum, and predicts.
"""

from __future__ import annotations

import getpass
import json
import logging
import queue
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airflow_amml.models.errors import ModelDataError
from airflow_amml.registry import ModelNotFoundError, ModelRegistry, RegistryError
from airflow_amml.registry.names import check_alias, item_model_name
from airflow_amml.run_config import RunConfig
from airflow_amml.sdk import AbstractProgress, PipelineError
from compiler.errors import AmmlError

from .scaler_stats import SCALER_ATTR, fanout_hint, run_model_ref

log = logging.getLogger(__name__)

CHAMPION = "champion"  # the alias `lstm model="ett@champion"` (ett_predict) reads
MODEL_VERSION_COLUMN = "model_version"  # on every prediction: the version that made it ("ett/3")
ORIGIN_COLUMN, STEP_COLUMN = "origin", "step"  # `lstm layout="long"`: where a forecast starts, its step 1 … H
# `lstm layout="long"`: rows from one batch at most (origins x steps; ~40 bytes each, so ~160 MB)
MAX_FORECAST_ROWS = 4_000_000
# `lstm level=`: interval bounds from one batch at most (origins x steps x 2 per level; 8 bytes each, 128 MB)
MAX_INTERVAL_VALUES = 16_000_000
# While the model trains, finish() yields None this often: the executor then reports the epoch it is at.
HEARTBEAT_SECONDS = 1.0
MAX_SET_BY = 250  # the registry's limit on who set an alias
PLOTTED_FORECASTS = 24 * 14  # the prediction plot: two weeks of hourly records at most, readable


def alias_set_by(config: RunConfig) -> str:
    """Who sets an alias from a run: the Airflow task (dag/run/task, from the run's lineage), else `amml run`
    and the user."""
    lineage = config.lineage
    if lineage.dag_id and lineage.run_id and lineage.task_id:
        return f"{lineage.dag_id}/{lineage.run_id}/{lineage.task_id}"[:MAX_SET_BY]
    try:
        return f"amml run ({getpass.getuser()})"[:MAX_SET_BY]
    except (KeyError, OSError):  # no user name (a container without a passwd entry)
        return "amml run"


def definition_yaml(registry: ModelRegistry, ref: str, config: RunConfig) -> str:
    """The YAML of definition `name:version`: registered from a model file if one defines it.

    A model file that does not check stops the run only when it is the one asked for (its top-level `name`
    and `version` say so, or nothing defines the definition elsewhere); another broken file in the folder is
    skipped with a warning (`amml lint` reports it).
    """
    from airflow_amml.models.spec import declared_ref, find_model_files, load_model_spec

    if ":" not in ref:
        raise PipelineError(f"`train_lstm model={ref!r}`: expected a definition NAME:VERSION such as 'ett:0.1'")
    broken: list[AmmlError] = []
    for folder in config.model_paths:
        for path in find_model_files(folder) if folder.is_dir() else ():
            try:
                spec = load_model_spec(path)
            except AmmlError as exc:
                if declared_ref(path) == ref:
                    raise PipelineError(f"`train_lstm model={ref!r}`: its model file has errors:\n{exc}") from None
                log.warning("train_lstm: skipping the model file %s, which has errors (amml lint shows them)", path)
                broken.append(exc)
                continue
            if spec.ref == ref:
                registry.register_definition(spec.name, spec.version, spec.source)
                return spec.source
    try:
        return registry.get_definition(ref)
    except ModelNotFoundError as exc:
        if not broken:
            raise
        raise PipelineError(
            f"`train_lstm model={ref!r}`: no model file defines it and none is registered; {len(broken)} model "
            f"file(s) have errors, so it may be in one of them:\n{broken[0]}",
            hint="fix the model file (`amml lint` lists every error)",
        ) from exc


def run_output_dir(config: RunConfig, name: str) -> Path:
    base = config.runs_dir or config.home / "runs"
    folder = base / name / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class TrainLstm(AbstractProgress):
    """`train_lstm model="ett:0.1", epoch=20`: train on the whole stream, emit one record per epoch
    (epoch, loss, val_loss) as it finishes, then register the model."""

    def open(self) -> None:
        from airflow_amml.models.spec import MAX_BATCH_SIZE, MAX_EPOCHS, parse_model_spec

        for key, top in (("epoch", MAX_EPOCHS), ("batch_size", MAX_BATCH_SIZE)):
            value = self.params[key]
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= top):
                raise PipelineError(f"`train_lstm {key}={value!r}`: expected a whole number from 1 to {top:,}")
        holdout = self.params["holdout"]
        if holdout is not None and not (isinstance(holdout, int) and not isinstance(holdout, bool) and holdout >= 0):
            raise PipelineError(f"`train_lstm holdout={holdout!r}`: expected a number of records ≥ 0")
        if self.params["promote"] is not None:  # a bad alias fails now, not after the training
            try:
                check_alias(self.params["promote"])
            except RegistryError as exc:
                raise PipelineError(f"`train_lstm promote=`: {exc.message}", hint=exc.hint) from None
        self.registry = ModelRegistry.from_config(self.context.config)
        ref = self.params["model"]
        self.spec = parse_model_spec(definition_yaml(self.registry, ref, self.context.config), f"model {ref}")
        self.model_name = self._registered_name()
        self.frames: list[pd.DataFrame] = []
        self.rows = self.frame_bytes = 0
        self.scaler: dict[str, Any] | None = None
        self.registered = None
        # a least-squares solve is one step whatever `epoch=` says (keras_builder.train logs that it ignores it)
        solved = self.spec.training.solver == "least_squares"
        self.epochs_total = 1 if solved else self.params["epoch"] or self.spec.training.epochs
        self.note: str | None = None
        self.gate: tuple[float, float, int] | None = None  # (new, current) hold-out MAE over `steps` steps
        self.step_errors: Any = None  # the new model's HoldoutErrors, when there is a hold-out
        self.gate_problem: str | None = None  # why the gate could not compare (the alias then stays)

    def progress_note(self) -> str | None:
        return self.note

    def _registered_name(self) -> str:
        """The name the trained model is registered (and aliased) under: the definition's, or in a fanned-out
        run the item's own model, `<definition name>.<item slug>` (registry.names.item_model_name), so each
        series keeps its versions and its @champion apart."""
        item = self.context.config.item
        if item is None:
            return self.spec.name
        from airflow_amml.registry.metadata import check_tags

        try:
            check_tags({item[0]: str(item[1])})  # the version's tag: refused now, not after the training
            return item_model_name(self.spec.name, item[1])
        except RegistryError as exc:
            raise PipelineError(f"`train_lstm model={self.params['model']!r}`: {exc.message}", hint=exc.hint) from None

    def process(self, batch: pd.DataFrame) -> None:
        self.frames.append(batch)
        self.scaler = batch.attrs.get(SCALER_ATTR, self.scaler)
        self.rows += len(batch)
        self.frame_bytes += int(batch.memory_usage(index=True, deep=False).sum())
        self._check_budget()
        return None

    def _check_budget(self) -> None:
        """Stop as soon as the records so far would not fit the training budget (the stream may not end)."""
        from airflow_amml.models.spec import TRAIN_MEMORY_ENV, training_budget_problem

        # the records are held, then concatenated into one frame: twice their size at the peak
        problem = training_budget_problem(
            self.spec,
            rows=self.rows,
            batch_size=self.params["batch_size"],
            extra_bytes=2 * self.frame_bytes,
            limit=self.context.config.train_memory_limit,
        )
        if problem is not None:
            raise PipelineError(
                f"`train_lstm` stopped after {self.rows:,} records: {problem}",
                hint="train on fewer records (`source ... limit=`, `start=`/`end=`), or with a shorter window or "
                f"fewer features, or raise {TRAIN_MEMORY_ENV} (e.g. 8GiB) on a machine that has the memory",
            )

    def finish(self) -> Iterator[pd.DataFrame]:
        if not self.frames:
            raise PipelineError(f"`train_lstm` received no records to train {self.spec.ref} on")
        lineage = self.context.config.lineage
        if self.params["register"] and lineage.run_id and lineage.task_id:
            done = self.registry.find_by_lineage(self.model_name, lineage.dag_id, lineage.run_id, lineage.task_id)
            if done is not None:  # a retry of a task that already registered: do not make a second version
                log.info(
                    "train_lstm: %s already registered %s for this run; not training again", self.spec.ref, done.ref
                )
                self.registered = done
                self._champion_if_none()
                self.note = f"already registered {done.ref}"
                return
        frame = pd.concat(self.frames, ignore_index=True)
        self.frames = []
        missing = [c for c in {*self.spec.training.features, self.spec.training.target} if c not in frame.columns]
        if missing:
            raise PipelineError(
                f"`train_lstm`: model {self.spec.ref} needs column(s) {sorted(missing)}; the records have "
                f"{list(frame.columns)}"
            )
        holdout_rows = int(self.params["holdout"] or 0)
        holdout = frame.iloc[len(frame) - holdout_rows :] if holdout_rows else None
        if holdout_rows:
            horizon = self.spec.training.horizon
            if holdout_rows < horizon:  # checked before training: the hold-out must hold one forecast's labels
                raise PipelineError(
                    f"`train_lstm holdout={holdout_rows}`: model {self.spec.ref} forecasts {horizon} records "
                    f"ahead, so a hold-out needs at least {horizon} records to score one forecast",
                    hint=f"raise the hold-out, e.g. holdout={2 * horizon}",
                )
            holder = self._holder_horizon()  # the gate scores both on forecasts with labels for both horizons
            if holder is not None and holdout_rows < holder[1]:
                raise PipelineError(
                    f"`train_lstm holdout={holdout_rows}, promote={self.params['promote']!r}`: "
                    f"@{self.params['promote']} ({holder[0]}) forecasts {holder[1]} records ahead, and the gate "
                    "compares both models on forecasts whose labels are all in the hold-out",
                    hint=f"raise the hold-out, e.g. holdout={2 * holder[1]}",
                )
            if holdout_rows + self.spec.training.history >= len(frame):
                raise PipelineError(
                    f"`train_lstm holdout={holdout_rows}` leaves {len(frame) - holdout_rows} of {len(frame)} records "
                    f"to train {self.spec.ref} on; lower the hold-out"
                )
            frame = frame.iloc[: len(frame) - holdout_rows]
        self.holdout_rows = holdout_rows
        result: dict[str, Any] = {}
        yield from self._train(frame, result)
        evaluation = self._evaluate(result["model"], frame, holdout) if holdout is not None else {}
        from airflow_amml.models.keras_builder import epochs_run

        epochs = epochs_run(result["history"])
        self.note = epochs
        if self.params["register"]:
            from .evaluation import with_context

            # the hold-out's records all labels (the first forecasts read the end of the training records)
            scored = frame if holdout is None else with_context(frame, holdout, self.spec.training.history)[0]
            residuals = self._residual_threshold(result["model"], scored)
            self.registered = self._register(
                result["model"], result["history"], frame, holdout, {**evaluation, **residuals}
            )
            aliases = [self._promote(evaluation), CHAMPION if self._champion_if_none() else None]
            named = " ".join(f"@{alias}" for alias in dict.fromkeys(aliases) if alias)
            self.note = f"{epochs}, registered {self.registered.ref}" + (f" {named}" if named else "")

    def _train(self, frame: pd.DataFrame, result: dict[str, Any]) -> Iterator[pd.DataFrame | None]:
        """Train in a thread; yield each epoch's record (epoch, loss, val_loss) as it ends, and None every
        HEARTBEAT_SECONDS meanwhile (the executor reports the epoch the training is at). Fills ``result`` with
        the model and its history. (`keras_builder.train` logs each epoch's line.)"""
        epochs: queue.Queue[dict[str, Any] | BaseException | None] = queue.Queue()

        def fit() -> None:
            from airflow_amml.models import keras_builder

            try:
                result["model"], result["history"] = keras_builder.train(
                    self.spec,
                    frame,
                    epochs=self.params["epoch"],
                    batch_size=self.params["batch_size"],
                    on_epoch=lambda _, entry: epochs.put(entry),
                )
                epochs.put(None)
            except BaseException as exc:  # delivered to the component's thread below
                epochs.put(exc)

        solved = self.spec.training.solver == "least_squares"
        before = {"epoch": 0, **({"member": 1} if self.spec.training.ensemble_seeds else {})}  # epoch 1 runs
        self.note = "solving by least squares" if solved else self._progress(before)
        worker = threading.Thread(target=fit, name="amml-train", daemon=True)
        worker.start()
        while True:
            try:
                item = epochs.get(timeout=HEARTBEAT_SECONDS)
            except queue.Empty:
                yield None
                continue
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            self.note = self._progress(item)
            yield pd.DataFrame([item])
        worker.join()

    def _holder_horizon(self) -> tuple[str, int] | None:
        """(ref, horizon) of the version `promote=`'s alias points at now, or None (no promote=, no holder)."""
        alias = self.params["promote"]
        if not alias:
            return None
        from airflow_amml.models.spec import parse_model_spec
        from airflow_amml.registry import ModelNotFoundError

        try:
            entry = self.registry.resolve(f"{self.model_name}@{alias}")
        except ModelNotFoundError:
            return None
        spec = parse_model_spec(self.registry.get_definition(entry.definition), entry.definition)
        return entry.ref, spec.training.horizon

    def _champion_if_none(self) -> bool:
        """A name's first version (there is no @champion yet) becomes its champion, so that the prediction
        DAG (`lstm model="ett@champion"`) runs after the first training; recorded in the alias history with
        who and why. Never moves an existing champion (that is `promote=`'s job). True if it set it."""
        if self.registered is None:
            return False
        name, version = self.model_name, self.registered.version
        reason = f"first version of {name}: no {CHAMPION} yet" if version == 1 else f"no {CHAMPION} of {name} yet"
        try:
            made = self.registry.set_alias_if_absent(
                name, CHAMPION, version, set_by=alias_set_by(self.context.config), reason=reason
            )
        except RegistryError as exc:
            raise PipelineError(
                f"`train_lstm` registered {self.registered.ref} but could not make it @{CHAMPION}: {exc.message}",
                hint=exc.hint,
            ) from exc
        if made:
            log.info("train_lstm: %s is now %s@%s (%s)", self.registered.ref, name, CHAMPION, reason)
        return made

    def _residual_threshold(self, model: Any, records: pd.DataFrame) -> dict[str, Any]:
        """The dynamic threshold of the model's one-step errors on `records` (the hold-out, else the training
        records), stored with the version for `residual_detector model=...`; in the stream's (scaled) units."""
        from airflow_amml.detection.dynamic_threshold import residual_threshold
        from airflow_amml.models import keras_builder

        t = self.spec.training
        n = len(records) - t.history  # forecasts whose next value is among the records
        if n < 2:
            return {}
        forecasts = keras_builder.predict(model, self.spec, records)[:n, 0]
        return residual_threshold(records[t.target].to_numpy(dtype=float)[t.history : t.history + n], forecasts)

    def _evaluate(self, model: Any, trained_on: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, Any]:
        """Hold-out errors (original units, and the scaled units; per step for a horizon model) of the new
        model and, with `promote`, of the alias's current model on the same forecasts: every hold-out record
        is a label, the first forecasts reading the end of the training records."""
        from .evaluation import forecast_origins, holdout_errors, holdout_metrics, load_champion, with_context

        t = self.spec.training
        alias = self.params["promote"]
        champion = load_champion(self.registry, f"{self.model_name}@{alias}") if alias else None
        reach = max(t.history, champion.spec.training.history if champion else 0)
        records, labels_from = with_context(trained_on, holdout, reach)
        own = forecast_origins(len(records), labels_from, t.history, t.horizon)
        errors = holdout_errors(model, self.spec, records, self.scaler, self.scaler, own)
        self.step_errors = errors  # for the plot of the errors by step
        result: dict[str, Any] = {"holdout_records": len(holdout), **holdout_metrics(errors)}
        if champion is not None:
            theirs_t = champion.spec.training
            # the same forecasts for both: origins with both histories, labels for both horizons
            common = forecast_origins(
                len(records), labels_from, max(t.history, theirs_t.history), max(t.horizon, theirs_t.horizon)
            )
            result[f"{alias}_version"] = champion.entry.version
            if len(common):
                shared = np.array_equal(common, own)  # the usual case (same window and horizon): no second predict
                mine = errors if shared else holdout_errors(model, self.spec, records, self.scaler, self.scaler, common)
                scaler = champion.entry.scaler or None
                theirs = holdout_errors(champion.model, champion.spec, records, self.scaler, scaler, common)
                # the gate: the mean over the steps both forecast (all of them when the horizons agree)
                steps = min(errors.horizon, theirs.horizon)
                self.gate = (mine.mean_mae(steps), theirs.mean_mae(steps), steps)
                result[f"{alias}_holdout_mae"] = self.gate[1]  # what the gate compared with
            else:  # the holder reads more history than the training records hold before the hold-out
                self.gate_problem = (
                    f"@{alias} ({champion.entry.ref}) reads {theirs_t.history} records per forecast: no forecast "
                    f"of the {len(holdout):,}-record hold-out has them"
                )
        over = f" (mean over {errors.horizon} steps)" if errors.horizon > 1 else ""
        held = f"train_lstm {self.spec.ref} hold-out ({len(holdout):,} records): MAE{over} {result['holdout_mae']:.4g}"
        if self.gate is not None:
            new, current, steps = self.gate
            same = f" over {steps} step{'s' if steps > 1 else ''}" if steps != errors.horizon else ""
            held += f"; on the same forecasts{same}: {new:.4g} vs @{alias} ({champion.entry.ref}) {current:.4g}"
        log.info("%s", held)
        return result

    def _promote(self, evaluation: dict[str, Any]) -> str | None:
        """Point the alias at the new version only if it beats the current holder on the hold-out: a lower
        MAE averaged over every window and step (without a hold-out, or a holder, there is nothing to beat).
        The alias, if it was moved."""
        alias = self.params["promote"]
        if not alias or self.registered is None:
            return None
        if self.gate_problem is not None:
            log.info("train_lstm: kept @%s (%s)", alias, self.gate_problem)
            return None
        if self.gate is None or self.gate[0] < self.gate[1]:
            if "holdout_mae" not in evaluation:
                reason = f"promote={alias} without a hold-out to compare on"
            elif self.gate is None:
                reason = f"promote={alias}: no @{alias} to compare with"
            else:
                new, current, steps = self.gate
                over = f" (mean over {steps} steps)" if steps > 1 else ""
                reason = f"promote={alias}: hold-out MAE{over} {new:.4g} beats {current:.4g}"
            self.registry.set_alias(
                self.model_name, alias, self.registered.version, set_by=alias_set_by(self.context.config), reason=reason
            )
            log.info("train_lstm: promoted %s to @%s (%s)", self.registered.ref, alias, reason)
            return alias
        log.info("train_lstm: kept @%s (hold-out MAE %.4g is not better than %.4g)", alias, *self.gate[:2])
        return None

    def _progress(self, entry: dict[str, Any]) -> str:
        """The note while training, after an epoch: the epoch running now (an ensemble's: of which member;
        after a member's last epoch, the next member's first)."""
        members = len(self.spec.training.ensemble_seeds)
        if "member" not in entry:
            return f"epoch {min(entry['epoch'] + 1, self.epochs_total)}/{self.epochs_total}"
        member, epoch = entry["member"], entry["epoch"] + 1
        if epoch > self.epochs_total and member < members:
            member, epoch = member + 1, 1
        return f"member {member}/{members}, epoch {min(epoch, self.epochs_total)}/{self.epochs_total}"

    def training_params(self, model: Any, history: list[dict[str, Any]]) -> dict[str, Any]:
        """What this training ran with, resolved (the run's `epoch=`/`batch_size=` over the definition's, the
        optimizer's own learning rate when the definition sets none): the version's params, as MLflow keeps
        them. Lists become comma-separated text (the registry keeps JSON scalars)."""
        t = self.spec.training
        if t.solver == "least_squares":  # no epochs, batches, optimizer or seed: the solver says how
            descent: dict[str, Any] = {"solver": t.solver}
        else:
            descent = {
                "epochs": self.epochs_total,
                "batch_size": self.params["batch_size"] or t.batch_size,
                "optimizer": t.optimizer,
                "learning_rate": t.learning_rate if t.learning_rate is not None else _initial_rate(model, history),
                # an ensemble's members' seeds ("7,1,2"), or the one model's
                **({"ensemble_seeds": ",".join(map(str, t.ensemble_seeds))} if t.ensemble_seeds else {"seed": t.seed}),
                "shuffle": t.shuffle,
            }
        params: dict[str, Any] = {
            "model": self.spec.ref,
            **descent,
            "window": t.window,
            **({"history": t.history} if t.history != t.window else {}),
            "horizon": t.horizon,
            "target": t.target,
            "features": ",".join(t.features),
            "loss": t.loss,
            "validation_split": t.validation_split,
            "predict": t.predict,
            "inputs": t.inputs,
            "holdout": self.holdout_rows,
            "promote": self.params["promote"],
            "scaler": (self.scaler or {}).get("kind"),
        }
        if t.clipnorm is not None:
            params["clipnorm"] = t.clipnorm
        if t.early_stopping is not None:
            params["early_stopping_patience"] = t.early_stopping.patience
            params["early_stopping_monitor"] = t.early_stopping.monitor
        if t.lr_schedule is not None:
            params["lr_schedule"] = t.lr_schedule.type
        if t.time_features:
            params["time_features"] = ",".join(t.time_features)
        if t.moving_average:
            params["moving_average"] = t.moving_average
        if t.seasonal_days:
            params["seasonal_means"] = f"period {t.seasonal_period}, days {','.join(map(str, t.seasonal_days))}"
        return params

    def _register(
        self,
        model: Any,
        history: list[dict[str, Any]],
        frame: pd.DataFrame,
        holdout: pd.DataFrame | None,
        evaluation: dict[str, Any],
    ) -> Any:
        from airflow_amml.models import keras_builder

        from .evaluation import conformal_intervals, with_context
        from .plots import plot_loss, plot_prediction, plot_step_errors

        out = run_output_dir(self.context.config, self.model_name)
        model_file = keras_builder.save_model(model, out / "model.keras")
        # `history`: the records a forecast reads (its window, and the seasonal means' past before it)
        window, horizon = self.spec.training.history, self.spec.training.horizon
        # a horizon model's fan: room for forecasts over the next `horizon` records from origins over as many
        plotted = PLOTTED_FORECASTS if horizon == 1 else max(PLOTTED_FORECASTS, 2 * horizon)
        # the prediction plot shows the hold-out (records the model did not train on) when there is one, its
        # first forecasts reading the end of the training records
        if holdout is None:
            tail = frame.iloc[-min(len(frame), plotted + window) :]
            which = f"the last {len(tail) - window:,} training records"
        else:
            records, _ = with_context(frame, holdout, window)
            shown = min(plotted, len(holdout))
            tail = records.iloc[len(records) - shown - window :]
            whole = shown == len(holdout)
            which = f"the hold-out ({shown:,} records)" if whole else f"the last {shown:,} records of the hold-out"
        predicted = keras_builder.predict(model, self.spec, tail)
        predicted = predicted[:, 0] if horizon == 1 else predicted
        plots = {
            "loss": plot_loss(history, out / "loss.png", self.spec.ref, self.spec.training.loss),
            "prediction": plot_prediction(tail, predicted, self.spec, out / "prediction.png", self.scaler, which),
        }
        if horizon > 1 and self.step_errors is not None:
            target = self.spec.training.target
            units = f"{target}, original units" if self.step_errors.mae_scaled is not None else target
            plots["steps"] = plot_step_errors(self.step_errors, out / "steps.png", self.spec.ref, units)
        final = history[-1]
        metrics = {
            "loss": final["loss"],
            "val_loss": final["val_loss"],
            "epochs": max(h["epoch"] for h in history),  # an ensemble's: the most one member ran
            **({"ensemble_members": history[-1]["members"]} if history[-1].get("members") else {}),
            "train_records": len(frame),
            **evaluation,
        }
        try:
            item = self.context.config.item
            entry = self.registry.register_version(
                self.model_name,
                self.spec.ref,
                model_file,
                scaler=self.scaler,
                metrics=metrics,
                plots=plots,
                lineage=self.context.config.lineage,
                params=self.training_params(model, history),
                intervals=conformal_intervals(self.step_errors) if self.step_errors is not None else None,
                tags=None if item is None else {item[0]: str(item[1])},  # e.g. series=nab/realKnownCause/nyc_taxi
            )
        except RegistryError as exc:
            raise PipelineError(
                f"`train_lstm` trained {self.spec.ref} but could not register it: {exc.message}", hint=exc.hint
            ) from exc
        (out / "registered.json").write_text(json.dumps({"model": entry.ref, "uri": entry.artifact_uri}))
        # DEBUG: the task's summary says "registered ett/2", and under Airflow the operator logs its page
        log.debug("train_lstm: registered %s (outputs in %s)", entry.ref, out)
        return entry


def _initial_rate(model: Any, history: list[dict[str, Any]]) -> float | None:
    """The learning rate the first epoch ran with (a schedule records it per epoch), else the optimizer's;
    to float32's 7 digits (what the optimizer holds: 0.001, not 0.0010000000474974513)."""
    try:
        if history and history[0].get("lr") is not None:
            rate = float(history[0]["lr"])
        else:
            import keras

            rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):
        return None
    return float(f"{rate:.7g}")


class LstmPredict(AbstractProgress):
    """`lstm model="ett@champion"`: one-step (or horizon-step) forecasts for every record that completes a
    window (its *origin*); the forecast made at a record is emitted on that record (its timestamp), in `output`.
    A forecast reads the definition's `history` records: its window, and with `seasonal_means` the records
    their means reach back to before it (`history - 1` of them are carried over from one batch to the next;
    a DAG's `warmup=` reads `history - 1` records before its interval so that its first hour is an origin).

    `layout="long"` gives a forecast the shape darts, statsforecast and neuralforecast users read: H rows per
    origin, `origin` (the origin's time), the time column (the time forecast for: origin + step × `freq`),
    `step` (1 … H) and `output`, and nothing of the input records. `origins="last"` forecasts only from the
    stream's last full window, at its end: a daily run over its interval writes the next H steps after it.
    Either way one `predict` per batch, and the output of a batch is capped at MAX_FORECAST_ROWS rows.

    Every forecast names the version that made it in `model_version` (`ett/3`: the alias resolved when the
    component opened, so a later promotion never relabels rows). Records that already carry a
    `model_version` (from an earlier `lstm` in the pipe) get `<output>_model_version` instead."""

    records_in = 0  # records seen (set again in open)

    def open(self) -> None:
        from airflow_amml.models import keras_builder
        from airflow_amml.models.spec import parse_model_spec

        config = self.context.config
        registry = ModelRegistry.from_config(config)
        self.scratch = tempfile.TemporaryDirectory(prefix="amml-lstm-")
        try:  # in a fanned-out run, the item's own model (`nab@champion` → `nab.<item slug>@champion`)
            self.entry, path = registry.download(
                run_model_ref("lstm", self.params["model"], config), Path(self.scratch.name)
            )
        except RegistryError as exc:
            raise PipelineError(
                f"`lstm model={self.params['model']!r}`: {exc.message}",
                hint=fanout_hint(self.params["model"], config, exc.hint),
            ) from exc
        self.spec = parse_model_spec(registry.get_definition(self.entry.definition), self.entry.definition)
        try:
            self.model = keras_builder.load_model(path, self.spec)
        except ModelDataError as exc:
            raise PipelineError(
                f"`lstm model={self.params['model']!r}`: {self.entry.ref}: {exc.message}", hint=exc.hint
            ) from None
        self.tail: pd.DataFrame | None = None
        self.records_in = 0  # to say so at the end when the stream never held one forecast's history
        self.version_column: str | None = None  # chosen at the first batch, from the columns it has
        self.freq = self._given_freq()  # layout='long': the time between records (inferred when not given)
        self.last_attrs: dict[str, Any] = {}  # origins='last': the attrs of the last batch (its scaler)
        self.widths = self._interval_widths()  # level= : {label: half-width per step}, in the scaled units
        log.info("lstm: loaded %s (%s) for %s", self.entry.ref, self.entry.definition, self.params["model"])

    def _interval_widths(self) -> dict[str, np.ndarray]:
        """`level=[80, 95]`: the half-widths the version stores for each coverage (its conformal intervals),
        by the label its columns carry (`80`, `97.5`)."""
        from compiler.value_checks import coverages_problem

        levels = self.params["level"]
        if levels is None:
            return {}
        problem = coverages_problem(levels)  # a constant was checked by lint; a run parameter is checked here
        if problem is not None:
            raise PipelineError(f"`lstm level=`: {problem[0]}", hint=problem[1])
        stored = self.entry.intervals.get("levels", {})
        if not stored:
            raise PipelineError(
                f"`lstm level={list(levels)}`: {self.entry.ref} has no prediction intervals (they are computed "
                "on the hold-out of the training)",
                hint="train it with a hold-out (`train_lstm holdout=N`), or leave out level=",
            )
        by_value = {float(label): label for label in stored}
        widths = {}
        for level in levels:
            label = by_value.get(float(level))  # compared as numbers: 80 and 80.0 are the same level
            if label is None:
                raise PipelineError(
                    f"`lstm level={list(levels)}`: {self.entry.ref} has intervals for {', '.join(stored)} % only "
                    f"(its hold-out had {self.entry.intervals.get('forecasts', 0):,} forecasts; the 99 % level "
                    "needs 99 of them)",
                    hint=f"ask for one of those, e.g. level=[{next(iter(stored))}], or train with a longer "
                    "hold-out (`train_lstm holdout=N` with N ≥ horizon + 98 stores all five levels)",
                )
            widths[label] = np.asarray(stored[label], dtype=np.float64)
        return widths

    def progress_note(self) -> str | None:
        return f"model {self.entry.ref}"

    def _given_freq(self) -> np.timedelta64 | None:
        """`freq=` as a time step (None: inferred from the records); the long layout's names checked too."""
        from compiler.value_checks import DURATION_EXAMPLES, duration_seconds

        for key, choices in (("layout", ("wide", "long")), ("origins", ("every", "last"))):
            if self.params[key] not in choices:  # a run param (`layout=params.layout`) is checked only now
                raise PipelineError(
                    f"`lstm {key}={self.params[key]!r}`: expected one of {', '.join(map(repr, choices))}",
                    hint=f"e.g. {key}={choices[-1]!r}",
                )
        output = self.params["output"]
        if self.params["layout"] == "long" and output in (ORIGIN_COLUMN, STEP_COLUMN, self.params["time"]):
            raise PipelineError(
                f"`lstm output={output!r}`: the long layout has a column of that name already",
                hint="name the forecast column otherwise, e.g. output='prediction'",
            )
        freq = self.params["freq"]
        if freq is None:
            return None
        seconds = duration_seconds(freq)
        if not seconds:
            raise PipelineError(
                f"`lstm freq={freq!r}`: expected the time between records, a duration such as {DURATION_EXAMPLES}",
                hint="e.g. freq='1h' for hourly records",
            )
        return np.timedelta64(seconds, "s")

    def process(self, batch: pd.DataFrame) -> pd.DataFrame | None:
        # the records one forecast reads: its window (and, with seasonal means, the past they reach back to);
        # the last `history - 1` of a batch are kept so that the next batch's first records complete windows
        window = self.spec.training.history
        self.records_in += len(batch)
        joined = batch if self.tail is None else pd.concat([self.tail, batch])
        if self.params["origins"] == "last":  # keep the last full window; forecast from it at the end
            self.tail = joined.iloc[-window:]
            self.last_attrs = dict(batch.attrs)
            return None
        self.tail = joined.iloc[-(window - 1) :] if window > 1 else None
        if len(joined) < window:
            return None
        return self._forecast(joined, batch.attrs)

    def finish(self) -> pd.DataFrame | None:
        history = self.spec.training.history
        if 0 < self.records_in < history:  # not an error (an interval may be short), but never silent
            log.warning(
                "lstm: the stream had %d records; %s reads %d per forecast, so nothing was forecast (read more "
                "records before the interval: `source ... warmup=%d`, or `warmup_for=%r`, which follows the model)",
                self.records_in,
                self.spec.ref,
                history,
                history - 1,
                self.params["model"],
            )
        if self.params["origins"] != "last" or self.tail is None or len(self.tail) < history:
            return None
        tail, self.tail = self.tail, None
        return self._forecast(tail, self.last_attrs)

    def _forecast(self, joined: pd.DataFrame, attrs: dict[str, Any]) -> pd.DataFrame:
        """The forecasts from every origin of `joined` (its records that complete a window), in the layout
        asked for; the scaler statistics of `attrs` carried over to the forecast columns."""
        from airflow_amml.models import keras_builder

        window, horizon = self.spec.training.history, self.spec.training.horizon
        origins = len(joined) - window + 1
        long = self.params["layout"] == "long"
        if long and origins * horizon > MAX_FORECAST_ROWS:  # checked before the model runs
            raise PipelineError(
                f"`lstm layout='long'`: {origins:,} origins x {horizon:,} steps would be {origins * horizon:,} "
                f"rows from one batch, more than {MAX_FORECAST_ROWS:,}",
                hint="forecast from the last origin only (origins='last'), or use layout='wide'",
            )
        bounds = origins * horizon * 2 * len(self.widths)
        if bounds > MAX_INTERVAL_VALUES:  # checked before the model runs, as the rows are
            raise PipelineError(
                f"`lstm level=`: {origins:,} origins x {horizon:,} steps x {len(self.widths)} levels would be "
                f"{bounds:,} interval bounds from one batch, more than {MAX_INTERVAL_VALUES:,}",
                hint="ask for fewer levels, or forecast from the last origin only (origins='last')",
            )
        forecasts = keras_builder.predict(self.model, self.spec, joined)
        output = self.params["output"]
        if long:
            out = self._long_rows(joined, forecasts)
        else:
            out = joined.iloc[window - 1 :].copy()
            out[_wide_names(output, forecasts.shape[1])] = forecasts
        if self.widths:
            out = pd.concat([out, self._bounds(forecasts, output, long, out.index)], axis=1)
        if self.version_column is None:
            taken = MODEL_VERSION_COLUMN in out.columns
            self.version_column = f"{output}_{MODEL_VERSION_COLUMN}" if taken else MODEL_VERSION_COLUMN
        out[self.version_column] = self.entry.ref
        out.attrs = dict(attrs)
        scaler = out.attrs.get(SCALER_ATTR)
        target = self.spec.training.target
        if scaler and target in scaler.get("columns", {}):  # predictions live in the target's scaled space
            columns = dict(scaler["columns"])
            for col in out.columns:
                if col != self.version_column and (col == output or col.startswith(f"{output}_")):
                    columns[col] = columns[target]
            out.attrs[SCALER_ATTR] = {**scaler, "columns": columns}
        return out

    def _bounds(self, forecasts: np.ndarray, output: str, long: bool, index: pd.Index) -> pd.DataFrame:
        """The interval columns of `level=`, in one frame: each forecast ± its step's half-width (long: a
        column per bound, a row per origin and step; wide: `<output>[_<step>]_lo_<level>` per step)."""
        horizon = forecasts.shape[1]
        columns: dict[str, np.ndarray] = {}
        for label, width in self.widths.items():
            lo, hi = forecasts - width, forecasts + width
            if long:
                columns[f"{output}_lo_{label}"], columns[f"{output}_hi_{label}"] = lo.reshape(-1), hi.reshape(-1)
                continue
            for step, name in enumerate(_wide_names(output, horizon)):
                columns[f"{name}_lo_{label}"], columns[f"{name}_hi_{label}"] = lo[:, step], hi[:, step]
        return pd.DataFrame(columns, index=index)

    def _long_rows(self, joined: pd.DataFrame, forecasts: np.ndarray) -> pd.DataFrame:
        """H rows per origin, origin by origin and step by step: origin, target time, step, value."""
        from .column_params import record_times

        time = self._time_column(joined)
        times = record_times("lstm", joined, time)
        if self.freq is None:
            self.freq = self._inferred_freq(times, time)
        n, horizon = forecasts.shape
        steps = np.arange(1, horizon + 1, dtype=np.int64)
        origin = np.repeat(times[len(times) - n :], horizon)
        return pd.DataFrame(
            {
                ORIGIN_COLUMN: origin,
                time: origin + np.tile(steps, n) * self.freq,
                STEP_COLUMN: np.tile(steps, n),
                self.params["output"]: forecasts.reshape(-1),
            }
        )

    def _time_column(self, batch: pd.DataFrame) -> str:
        from .column_params import time_column

        return time_column("lstm", batch, self.params["time"], needs="a forecast's rows need the records' times")

    @staticmethod
    def _inferred_freq(times: np.ndarray, column: str) -> np.timedelta64:
        """The most common step between consecutive times (a gap or two do not change it); the smallest of
        equally common ones."""
        steps = np.diff(times)
        steps = steps[steps > np.timedelta64(0, "ns")]
        if not len(steps):
            raise PipelineError(
                f"`lstm layout='long'`: cannot tell the time between records from `{column}` (the window's "
                "times do not advance)",
                hint="give it: freq='1h'",
            )
        values, counts = np.unique(steps, return_counts=True)
        return values[int(counts.argmax())]

    def close(self) -> None:
        if hasattr(self, "scratch"):
            self.scratch.cleanup()


def _wide_names(output: str, horizon: int) -> list[str]:
    """The wide layout's forecast columns: `prediction` for one step, `prediction_1` … `prediction_H` for H."""
    return [output] if horizon == 1 else [f"{output}_{step}" for step in range(1, horizon + 1)]
