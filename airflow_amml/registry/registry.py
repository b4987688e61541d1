"""The model registry (the paper's Model Manager, Fig. 12 and 14), made trustworthy.

* Definitions: the model YAML under `name:version` (`ett:0.1`), immutable; registering the same text again
  is a no-op, different text under the same version is refused.
* Versions: each trained model gets the next number for its name (`ett/1`, `ett/2`, …). Rows are never
  updated; they carry the artifact URI, its size and SHA-256, the definition, scaler statistics, metrics,
  training parameters (`params`), plots and lineage (dag_id, run_id, task, data interval, AMML source hash).
* Aliases move (`ett@champion`); tags annotate.

Registration is atomic: the registry first records the new unique folder it is about to write (its own
database says "I wrote this"), writes the files there, reads them back and verifies them; only then is the
version inserted, in one transaction that also drops the folder's record. If anything fails the files are
removed again; if even that fails (or the process dies), `gc()` removes the recorded folders no version owns.
A metadata row never points at a missing file, and `gc()` never touches a folder another registry wrote.

Every name, reference, tag, metric and lineage value is checked first (`names.py`, `metadata.py`).
New files go to the configured store; a version is read through the store its own URI names (the scheme
registry, `artifact_store_registry.py`), so versions stay readable after the configured location moves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import random
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import sqlalchemy as sa
from sqlalchemy.orm import Session

from airflow_amml.run_config import Lineage, RunConfig

from .artifact_store import ArtifactStore, artifact_root_of, sha256_file
from .artifact_store_registry import artifact_store_for
from .database import URL_HINT, reason, registry_engine, safe_url
from .database import migrate as migrate_schema
from .errors import ArtifactError, ChecksumMismatchError, InvalidValueError, ModelNotFoundError, RegistryError
from .metadata import (
    check_lineage_fields,
    check_metrics,
    check_params,
    check_plot_names,
    check_tags,
    check_text,
    intervals_json,
    scaler_json,
)
from .names import check_alias, check_definition_version, check_name, check_version_number, parse_definition_ref, shown
from .names import parse_ref as parse_ref
from .schema import AliasHistory, ArtifactWrite, ModelAlias, ModelDefinition, ModelTag, ModelVersion

log = logging.getLogger(__name__)

VERSION_ALLOCATION_RETRIES = 60
MAX_DEFINITION_BYTES = 1 << 20
MAX_PLOT_BYTES = 20 << 20  # a loss curve is ~50 KB: anything this large is not a plot the registry wrote
MAX_SET_BY = 250


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: int
    definition: str  # "name:version" of the model definition
    artifact_uri: str
    artifact_size: int
    artifact_sha256: str
    created_at: datetime
    scaler: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # what it was trained with ({} before they were kept)
    plots: dict[str, str] = field(default_factory=dict)
    intervals: dict[str, Any] = field(default_factory=dict)  # prediction intervals ({} before they were kept)
    lineage: Lineage = field(default_factory=Lineage)
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    status: str = "ready"

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"


@dataclass(frozen=True)
class AliasChange:
    """One recorded move of an alias: `name@alias` now points at `version` (before: `previous_version`,
    None when the alias was created), set by `set_by` (None: not recorded) at `set_at`, for `reason`."""

    name: str
    alias: str
    version: int
    previous_version: int | None
    set_by: str | None
    reason: str | None
    set_at: datetime


def _home(config: RunConfig) -> Path:
    """`$AMML_HOME`, which must be absolute: each process (worker, api-server, CLI) starts in another folder."""
    home = config.home
    if not home.is_absolute():
        raise RegistryError(
            f"AMML_HOME {str(home)!r} is a relative path: each process would find its registry somewhere else",
            hint=f"set an absolute folder, e.g. AMML_HOME={home.absolute()}",
        )
    return home


def registry_url(config: RunConfig) -> str:
    """The registry database: ``config.registry_url``, else SQLite in `$AMML_HOME` (the folder made here)."""
    if config.registry_url:
        return config.registry_url
    home = _home(config)
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RegistryError(
            f"cannot create AMML_HOME {home}: {exc.strerror or exc}",
            hint="point AMML_HOME at a writable folder, or set AMML_REGISTRY_URL",
        ) from exc
    return f"sqlite:///{home / 'registry.db'}"


def artifact_location(config: RunConfig) -> str:
    """Where new versions' files go: ``config.artifact_location``, else the folder `artifacts` in `$AMML_HOME`."""
    return config.artifact_location or str(_home(config) / "artifacts")


class ModelRegistry:
    def __init__(self, db_url: str, artifacts: ArtifactStore, *, scratch: Path | None = None) -> None:
        self.db_url = db_url
        self.engine = registry_engine(db_url)  # one per URL and process: shared by every registry on it
        self.artifacts = artifacts
        self.scratch = scratch or Path(tempfile.gettempdir())
        self.migrate()

    @classmethod
    def from_config(cls, config: RunConfig | None = None) -> ModelRegistry:
        """The registry a run's configuration names (None: :meth:`RunConfig.from_environment`): its database
        URL (`AMML_REGISTRY_URL`, or an Airflow connection the operator resolved) and its artifact location
        (`AMML_ARTIFACTS`, a folder or a URI whose scheme picks the store), else the embedded defaults (SQLite
        and a folder in `$AMML_HOME`). The store is opened here, in the process that uses it."""
        config = config if config is not None else RunConfig.from_environment()
        store = artifact_store_for(artifact_location(config))
        return cls(registry_url(config), store)

    # ---- schema ---------------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest revision (once per process and database; safe in parallel)."""
        try:
            migrate_schema(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            raise RegistryError(
                f"cannot reach the registry database {safe_url(self.db_url)}: {reason(exc)}",
                hint=self._connection_hint(),
            ) from exc
        except OSError as exc:  # the SQLite migration lock file
            raise RegistryError(f"cannot migrate the registry database {safe_url(self.db_url)}: {exc}") from exc
        except Exception as exc:
            from alembic.util import CommandError

            if not isinstance(exc, CommandError):
                raise
            # e.g. a revision this version does not have: a newer AMML migrated the database (a rolling upgrade)
            raise RegistryError(
                f"cannot migrate the registry database {safe_url(self.db_url)}: {exc}",
                hint="run the airflow-amml version that last migrated it (or a newer one) on this machine too",
            ) from exc

    def _connection_hint(self) -> str:
        database = self.engine.url.database
        if self.engine.dialect.name == "sqlite" and database and database != ":memory:":
            return f"check that the folder {Path(database).parent} exists and this process may write it"
        return f"check that the database server is up and the URL is right ({URL_HINT})"

    # ---- definitions ----------------------------------------------------------------------------------

    def register_definition(self, name: str, version: str, yaml_text: str) -> str:
        check_name(name, "definition name")
        check_definition_version(version)
        if not isinstance(yaml_text, str) or len(yaml_text.encode()) > MAX_DEFINITION_BYTES:
            raise InvalidValueError(f"model definition {name}:{version} must be YAML text of at most 1 MB")
        digest = sha256(yaml_text.encode()).hexdigest()
        ref = f"{name}:{version}"
        with self._session() as session:
            existing = session.scalar(sa.select(ModelDefinition).filter_by(name=name, version=version))
            if existing is not None:
                if existing.sha256 != digest:
                    raise RegistryError(
                        f"model definition {ref} is already registered with different content",
                        hint="definitions are immutable: give the changed model a new version, e.g. "
                        f"{name}:{_bump(version)}",
                    )
                return ref
            session.add(
                ModelDefinition(name=name, version=version, yaml=yaml_text, sha256=digest, created_at=datetime.now(UTC))
            )
            try:
                session.commit()
            except sa.exc.IntegrityError:  # registered concurrently: fine if identical
                session.rollback()
                return self.register_definition(name, version, yaml_text)
        return ref

    def get_definition(self, ref: str) -> str:
        name, version = parse_definition_ref(ref)
        with self._session() as session:
            row = session.scalar(sa.select(ModelDefinition).filter_by(name=name, version=version))
            if row is None:
                known = [f"{d.name}:{d.version}" for d in session.scalars(sa.select(ModelDefinition))]
                raise ModelNotFoundError(
                    f"no model definition {ref!r}; registered: {', '.join(sorted(known)) or '(none)'}",
                    hint="register it with `amml model register FILE.yaml` or put the YAML in the dags folder",
                )
            return row.yaml

    def list_definitions(self) -> list[tuple[str, str, str]]:
        with self._session() as session:
            rows = session.scalars(sa.select(ModelDefinition).order_by(ModelDefinition.name, ModelDefinition.id))
            return [(d.name, d.version, d.sha256) for d in rows]

    # ---- versions -------------------------------------------------------------------------------------

    def register_version(
        self,
        name: str,
        definition: str,
        model_file: Path,
        *,
        scaler: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        plots: Mapping[str, Path] | None = None,
        lineage: Lineage | None = None,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        intervals: Mapping[str, Any] | None = None,
    ) -> RegisteredVersion:
        """Check everything, record the folder about to be written, store the files, verify them, then record
        the version in one transaction. ``params`` are the training parameters (MLflow's params: JSON scalars,
        like metrics), ``metrics`` what the training measured, ``intervals`` its prediction intervals
        (:func:`~airflow_amml.components.evaluation.conformal_intervals`)."""
        check_name(name)
        definition_id = self._definition_id(definition)
        check_plot_names(plots)
        plots = dict(plots or {})
        metrics, params, tags = check_metrics(metrics), check_params(params), check_tags(tags)
        check_lineage_fields(dataclasses.asdict(lineage or Lineage()))
        scaler_text, intervals_text = scaler_json(scaler), intervals_json(intervals)
        size, digest = _local_checksum(Path(model_file), "model file")
        for plot_name, plot in plots.items():
            _local_checksum(Path(plot), f"plot {plot_name!r}")
        key = f"{name}/{uuid.uuid4().hex}"
        self._record_write(key)
        model_uri = None
        try:
            uris = self.artifacts.put([Path(model_file), *map(Path, plots.values())], key)
            model_uri, plot_uris = uris[0], dict(zip(plots, uris[1:]))
            stored = self.artifacts.checksum(model_uri, self.scratch)
            if stored != (size, digest):
                raise ChecksumMismatchError(
                    f"the stored model file {model_uri} does not match what was written "
                    f"(size {stored[0]} vs {size}, sha256 {stored[1][:12]}… vs {digest[:12]}…)"
                )
            version = self._insert_version(
                name,
                definition_id,
                key,
                model_uri,
                size,
                digest,
                scaler_text,
                metrics,
                params,
                plot_uris,
                lineage or Lineage(),
                tags,
                intervals_text,
            )
        except BaseException:
            self._abandon_write(key, model_uri)
            raise
        # DEBUG: the task log names the version once, from whoever registered it (the operator, `amml model`)
        log.debug("registered model %s/%d (%s, %d bytes)", name, version, model_uri, size)
        return self.resolve(f"{name}/{version}")

    def _record_write(self, key: str) -> None:
        """Say in this registry's own database that it is about to write folder `key` (what gc may remove)."""
        folder_uri = self.artifacts.folder_uri(key)
        with self._session() as session, session.begin():
            session.add(ArtifactWrite(key=key, folder_uri=folder_uri, created_at=datetime.now(UTC)))

    def _abandon_write(self, key: str, model_uri: str | None) -> None:
        """After a failed registration: remove the folder, then its record; what fails here is left to gc()."""
        with contextlib.suppress(Exception):
            if model_uri is not None and self._version_owns(model_uri):
                return  # the version was recorded after all (interrupted after the commit): keep its files
        try:
            self.artifacts.delete_folder(key)
            if self.artifacts.list_folder(key):
                return
            with self._session() as session, session.begin():
                session.execute(sa.delete(ArtifactWrite).filter_by(key=key))
        except Exception as exc:
            log.warning("could not clean up the unregistered folder %s (gc will): %s", key, exc)

    def _version_owns(self, uri: str) -> bool:
        with self._session() as session:
            return session.scalar(sa.select(ModelVersion.id).filter_by(artifact_uri=uri).limit(1)) is not None

    def _definition_id(self, definition: str) -> int:
        name, version = parse_definition_ref(definition)
        with self._session() as session:
            found = session.scalar(sa.select(ModelDefinition.id).filter_by(name=name, version=version))
        if found is None:
            self.get_definition(definition)  # raises the helpful not-found error
        return int(found)

    def _insert_version(
        self,
        name: str,
        definition_id: int,
        key: str,
        uri: str,
        size: int,
        digest: str,
        scaler: str | None,
        metrics: Mapping[str, Any] | None,
        params: Mapping[str, Any],
        plots: Mapping[str, str],
        lineage: Lineage,
        tags: Mapping[str, str],
        intervals: str | None = None,
    ) -> int:
        for attempt in range(VERSION_ALLOCATION_RETRIES):
            try:
                with Session(self.engine) as session, session.begin():  # raw errors: a lost race is retried
                    latest = session.scalar(sa.select(sa.func.max(ModelVersion.version)).filter_by(name=name))
                    version = (latest or 0) + 1
                    session.add(
                        ModelVersion(
                            name=name,
                            version=version,
                            definition_id=definition_id,
                            artifact_uri=uri,
                            artifact_size=size,
                            artifact_sha256=digest,
                            scaler=scaler,
                            metrics=_json(metrics),
                            params=_json(params),
                            plots=_json(plots),
                            intervals=intervals,
                            dag_id=lineage.dag_id,
                            run_id=lineage.run_id,
                            task_id=lineage.task_id,
                            data_interval_start=lineage.data_interval_start,
                            data_interval_end=lineage.data_interval_end,
                            source_hash=lineage.source_hash,
                            status="ready",
                            created_at=datetime.now(UTC),
                        )
                    )
                    session.flush()
                    for tag, value in tags.items():
                        session.add(ModelTag(name=name, version=version, key=tag, value=value))
                    session.execute(sa.delete(ArtifactWrite).filter_by(key=key))  # the version owns it now
                return version
            except sa.exc.IntegrityError:
                # another training took this number between our read and our insert: try the next one
                time.sleep(random.uniform(0.005, 0.05) * (1 + attempt % 5))
            except sa.exc.OperationalError as exc:
                if "locked" in str(exc.orig) and attempt < VERSION_ALLOCATION_RETRIES - 1:
                    time.sleep(random.uniform(0.01, 0.1))
                    continue
                raise RegistryError(f"cannot record model {name} in {safe_url(self.db_url)}: {reason(exc)}") from exc
            except sa.exc.SQLAlchemyError as exc:
                raise RegistryError(f"cannot record model {name} in {safe_url(self.db_url)}: {reason(exc)}") from exc
        raise RegistryError(
            f"could not allocate a version number for {name} after {VERSION_ALLOCATION_RETRIES} attempts"
        )

    def resolve(self, ref: str) -> RegisteredVersion:
        name, kind, value = parse_ref(ref)
        with self._session() as session:
            query = sa.select(ModelVersion).filter_by(name=name, status="ready")
            if kind == "version":
                row = session.scalar(query.filter_by(version=value))
            elif kind == "alias":
                alias = session.get(ModelAlias, (name, value))
                row = session.scalar(query.filter_by(version=alias.version)) if alias else None
            else:
                row = session.scalar(query.order_by(ModelVersion.version.desc()).limit(1))
            if row is None:
                raise self._not_found(session, ref, name, kind)
            [entry] = self._entities(session, [row])
            return entry

    def _not_found(self, session: Session, ref: str, name: str, kind: str) -> ModelNotFoundError:
        versions = session.scalars(sa.select(ModelVersion.version).filter_by(name=name)).all()
        if not versions:
            names = sorted(set(session.scalars(sa.select(ModelVersion.name))))
            from compiler.errors import did_you_mean

            return ModelNotFoundError(
                f"no model named {name!r}; registered models: {', '.join(names) or '(none)'}",
                hint=did_you_mean(name, names) or "train one with `train_lstm`",
            )
        aliases = session.scalars(sa.select(ModelAlias.alias).filter_by(name=name)).all()
        hint = None
        if kind == "alias":
            hint = (
                f"promote a version: `amml model alias {parse_ref(ref)[2]} {name}/{max(versions)}`, "
                f"or on the ML Models page (/amml/ui/models/{name})"
            )
        return ModelNotFoundError(
            f"no {kind} {ref!r}; {name} has versions {', '.join(map(str, sorted(versions)))}"
            + (f" and aliases {', '.join('@' + a for a in sorted(aliases))}" if aliases else " and no aliases"),
            hint=hint,
        )

    def list_versions(self, name: str | None = None) -> list[RegisteredVersion]:
        if name is not None:
            check_name(name)
        with self._session() as session:
            query = sa.select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version)
            if name:
                query = query.filter_by(name=name)
            return self._entities(session, session.scalars(query).all())

    def find_by_lineage(self, name: str, dag_id: str, run_id: str, task_id: str) -> RegisteredVersion | None:
        """The version a given task of a given run already registered (what makes a retried task safe)."""
        check_name(name)
        check_lineage_fields({"dag_id": dag_id, "run_id": run_id, "task_id": task_id})
        with self._session() as session:
            row = session.scalar(
                sa.select(ModelVersion)
                .filter_by(name=name, dag_id=dag_id, run_id=run_id, task_id=task_id)
                .order_by(ModelVersion.version)
                .limit(1)
            )
            return self._entities(session, [row])[0] if row is not None else None

    def set_alias(
        self, name: str, alias: str, version: int, *, set_by: str | None = None, reason: str | None = None
    ) -> None:
        """Point `name@alias` at `name/version` (creating or moving it) and record the move in the alias
        history, in one transaction: who (`set_by`, e.g. the Airflow user or `$USER (amml)`), why, when."""
        self._change_alias(name, alias, version, set_by, reason, only_if_absent=False)

    def set_alias_if_absent(
        self, name: str, alias: str, version: int, *, set_by: str | None = None, reason: str | None = None
    ) -> bool:
        """Create `name@alias` → `name/version` only when the alias does not exist yet; True when this call
        created it. Atomic across processes: two concurrent calls create it once (the alias's primary key
        decides), and only the winner records a history row."""
        return self._change_alias(name, alias, version, set_by, reason, only_if_absent=True)

    def _change_alias(
        self, name: str, alias: str, version: int, set_by: str | None, why: str | None, *, only_if_absent: bool
    ) -> bool:
        check_name(name)
        check_alias(alias)
        version = check_version_number(version)
        if set_by is not None:
            check_text(set_by, "alias set_by", MAX_SET_BY)
        if why is not None:
            check_text(why, "alias reason")
        self.resolve(f"{name}/{version}")  # must exist
        for attempt in range(VERSION_ALLOCATION_RETRIES):
            try:
                with Session(self.engine) as session, session.begin():  # raw errors: a lost race is retried
                    # FOR UPDATE: two concurrent moves on PostgreSQL see each other's result as `previous`
                    row = session.scalar(sa.select(ModelAlias).filter_by(name=name, alias=alias).with_for_update())
                    if row is not None and only_if_absent:
                        return False
                    now = datetime.now(UTC)
                    previous = row.version if row is not None else None
                    if row is None:
                        session.add(ModelAlias(name=name, alias=alias, version=version, updated_at=now))
                        session.flush()  # a concurrent creation fails here, before any history is written
                    else:
                        row.version, row.updated_at = version, now
                    session.add(
                        AliasHistory(
                            name=name,
                            alias=alias,
                            version=version,
                            previous_version=previous,
                            set_by=set_by,
                            reason=why or None,
                            set_at=now,
                        )
                    )
                log.info("%s@%s → %s/%d (was %s, by %s)", name, alias, name, version, previous, set_by or "?")
                return True
            except sa.exc.IntegrityError:
                # another process created the alias between our read and our insert
                if only_if_absent:
                    return False
                time.sleep(random.uniform(0.005, 0.05))
            except sa.exc.OperationalError as exc:
                if "locked" in str(exc.orig) and attempt < VERSION_ALLOCATION_RETRIES - 1:
                    time.sleep(random.uniform(0.01, 0.1))  # SQLite: another writer holds the file
                    continue
                raise RegistryError(f"cannot set {name}@{alias} in {safe_url(self.db_url)}: {reason(exc)}") from exc
            except sa.exc.SQLAlchemyError as exc:
                raise RegistryError(f"cannot set {name}@{alias} in {safe_url(self.db_url)}: {reason(exc)}") from exc
        raise RegistryError(f"could not set {name}@{alias} after {VERSION_ALLOCATION_RETRIES} attempts")

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasChange]:
        """Every recorded move of `name`'s aliases (or of one alias), newest first."""
        check_name(name)
        if alias is not None:
            check_alias(alias)
        with self._session() as session:
            query = sa.select(AliasHistory).filter_by(name=name)
            if alias is not None:
                query = query.filter_by(alias=alias)
            rows = session.scalars(query.order_by(AliasHistory.id.desc())).all()
            return [
                AliasChange(
                    name=r.name,
                    alias=r.alias,
                    version=r.version,
                    previous_version=r.previous_version,
                    set_by=r.set_by,
                    reason=r.reason,
                    set_at=_aware(r.set_at),
                )
                for r in rows
            ]

    def versions_by_lineage(self, dag_id: str, run_id: str, task_id: str | None = None) -> list[RegisteredVersion]:
        """The versions a DAG run (or one task of it) registered, oldest first: how a run links to its models."""
        check_lineage_fields({"dag_id": dag_id, "run_id": run_id, "task_id": task_id})
        with self._session() as session:
            query = sa.select(ModelVersion).filter_by(dag_id=dag_id, run_id=run_id, status="ready")
            if task_id is not None:
                query = query.filter_by(task_id=task_id)
            return self._entities(session, session.scalars(query.order_by(ModelVersion.id)).all())

    def read_plot(self, ref: str, plot: str) -> bytes:
        """The bytes of the plot (a PNG) named `plot` of version `ref`, read from the store that holds it;
        at most MAX_PLOT_BYTES (a larger file is refused, never read into memory)."""
        entry = self.resolve(ref)
        uri = entry.plots.get(plot) if isinstance(plot, str) else None
        if uri is None:
            raise ModelNotFoundError(
                f"model {entry.ref} has no plot {shown(plot)}; its plots: {', '.join(sorted(entry.plots)) or '(none)'}"
            )
        return self._store_holding(uri).read_bytes(uri, MAX_PLOT_BYTES, self.scratch)

    def set_tag(self, name: str, version: int, key: str, value: str) -> None:
        check_name(name)
        [(key, value)] = check_tags({key: value}).items()
        version = check_version_number(version)
        self.resolve(f"{name}/{version}")
        with self._session() as session, session.begin():
            session.merge(ModelTag(name=name, version=version, key=key, value=value))

    def download(self, ref: str, folder: Path) -> tuple[RegisteredVersion, Path]:
        """Fetch a version's model file into `folder` and verify its checksum before anyone loads it."""
        entry = self.resolve(ref)
        Path(folder).mkdir(parents=True, exist_ok=True)
        target = Path(folder) / Path(unquote(entry.artifact_uri)).name
        self._store_holding(entry.artifact_uri).get(entry.artifact_uri, target)
        size, digest = sha256_file(target)
        if (size, digest) != (entry.artifact_size, entry.artifact_sha256):
            target.unlink(missing_ok=True)
            raise ChecksumMismatchError(
                f"model {entry.ref}: the file {entry.artifact_uri} is corrupted (sha256 {digest[:12]}… "
                f"but {entry.artifact_sha256[:12]}… was registered; size {size} vs {entry.artifact_size})",
                hint="re-train the model, or point the alias at another version with `amml model alias`",
            )
        return entry, target

    def gc(self, *, grace_seconds: float = 3600.0, dry_run: bool = False) -> list[str]:
        """Remove the folders this registry started to write but never recorded a version for (failed or
        killed registrations), once older than the grace period so that registrations in progress are kept.

        Only folders this registry's own database recorded are considered: files another registry (another
        database) wrote into the same artifact root are never touched. Returns the URIs of the files removed
        (with `dry_run`, that would be removed); a folder that could not be removed is not reported."""
        cutoff = datetime.now(UTC) - timedelta(seconds=_check_grace(grace_seconds))
        with self._session() as session:
            pending = [
                (w.key, w.folder_uri)
                for w in session.scalars(sa.select(ArtifactWrite))
                if _aware(w.created_at) < cutoff
            ]
            owned = {_folder(uri) for uri in session.scalars(sa.select(ModelVersion.artifact_uri))}
        removed: list[str] = []
        for key, folder_uri in pending:
            if folder_uri != self.artifacts.folder_uri(key):
                continue  # written through another artifact root: not this store's to judge
            if folder_uri in owned:
                self._forget_write(key, dry_run)
                continue
            files = self.artifacts.list_folder(key)
            if dry_run:
                removed.extend(files)
            elif self._remove_folder(key):
                self._forget_write(key, dry_run)
                removed.extend(files)
        return removed

    def _remove_folder(self, key: str) -> bool:
        try:
            self.artifacts.delete_folder(key)
            left = self.artifacts.list_folder(key)
        except ArtifactError as exc:
            log.warning("gc: cannot remove %s: %s", key, exc)
            return False
        if left:
            log.warning("gc: %s is still there after removing it; keeping its record", left[0])
            return False
        return True

    def _forget_write(self, key: str, dry_run: bool) -> None:
        if not dry_run:
            with self._session() as session, session.begin():
                session.execute(sa.delete(ArtifactWrite).filter_by(key=key))

    # ---- helpers --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with Session(self.engine) as session:
                yield session
        except sa.exc.IntegrityError:
            raise  # callers handle races on unique keys themselves
        except sa.exc.SQLAlchemyError as exc:
            raise RegistryError(f"registry database {safe_url(self.db_url)} failed: {reason(exc)}") from exc

    def _store_holding(self, uri: str) -> ArtifactStore:
        """The store that reads a version's file: the configured one when the file is under its root, else the
        store for the root the version was written to (its URI says which), so that versions written before
        the configured location moved stay readable."""
        if self.artifacts.holds(uri):
            return self.artifacts
        root = artifact_root_of(uri)
        return self.artifacts.at_root(root) or artifact_store_for(root)

    def _entities(self, session: Session, rows: Sequence[ModelVersion]) -> list[RegisteredVersion]:
        """Rows → entities in three queries however many rows: their definitions, then the aliases and tags of
        their name (one name, as the rows share it but in a listing of everything: then of all names)."""
        if not rows:
            return []
        definition_ids = {row.definition_id for row in rows}
        definitions = {
            d.id: f"{d.name}:{d.version}"
            for d in session.scalars(sa.select(ModelDefinition).where(ModelDefinition.id.in_(definition_ids)))
        }
        names = {row.name for row in rows}
        aliases: dict[tuple[str, int], list[str]] = {}
        for alias in session.scalars(_of_names(sa.select(ModelAlias), names)):
            aliases.setdefault((alias.name, alias.version), []).append(alias.alias)
        tags: dict[tuple[str, int], dict[str, str]] = {}
        for tag in session.scalars(_of_names(sa.select(ModelTag), names)):
            tags.setdefault((tag.name, tag.version), {})[tag.key] = tag.value
        return [
            _entity(row, definitions[row.definition_id], aliases.get(key, []), tags.get(key, {}))
            for row in rows
            for key in [(row.name, row.version)]
        ]


def _of_names(query: sa.Select, names: set[str]) -> sa.Select:
    return query.filter_by(name=next(iter(names))) if len(names) == 1 else query


def _entity(row: ModelVersion, definition: str, aliases: list[str], tags: dict[str, str]) -> RegisteredVersion:
    return RegisteredVersion(
        name=row.name,
        version=row.version,
        definition=definition,
        artifact_uri=row.artifact_uri,
        artifact_size=row.artifact_size,
        artifact_sha256=row.artifact_sha256,
        created_at=row.created_at,
        scaler=_unjson(row.scaler),
        metrics=_unjson(row.metrics),
        params=_unjson(row.params),
        plots=_unjson(row.plots),
        intervals=_unjson(row.intervals),
        lineage=Lineage(
            row.dag_id, row.run_id, row.task_id, row.data_interval_start, row.data_interval_end, row.source_hash
        ),
        aliases=tuple(sorted(aliases)),
        tags=tags,
        status=row.status,
    )


def _local_checksum(path: Path, what: str) -> tuple[int, str]:
    try:
        if not path.is_file():
            raise InvalidValueError(f"the {what} {path} does not exist or is not a file")
        return sha256_file(path)
    except OSError as exc:
        raise InvalidValueError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc


def _check_grace(seconds: float) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
        raise InvalidValueError(f"gc grace period {seconds!r} must be a number of seconds, 0 or more")
    return min(float(seconds), 10 * 365 * 86400.0)  # timedelta overflows on absurd values


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite hands datetimes back naive


def _folder(uri: str) -> str:
    return uri.rsplit("/", 1)[0]


def _json(value: Mapping[str, Any] | None) -> str | None:
    return json.dumps(value, sort_keys=True, allow_nan=False) if value else None  # checked: finite, plain


def _unjson(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}


def _bump(version: str) -> str:
    head, _, last = version.rpartition(".")
    return f"{head}.{int(last) + 1}" if last.isdigit() and head else f"{version}.1"
