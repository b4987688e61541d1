"""The registry's tables (SQLAlchemy ORM). Changes to them go through a migration in `migrations/versions/`."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ModelDefinition(Base):
    """A model definition (the YAML) under `name:version`, e.g. `ett:0.1`. Immutable."""

    __tablename__ = "amml_model_definitions"
    __table_args__ = (sa.UniqueConstraint("name", "version", name="uq_amml_definition_name_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    version: Mapped[str] = mapped_column(sa.String(100))
    yaml: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class ModelVersion(Base):
    """A trained model: version numbers count up per name; a row is never changed after insert."""

    __tablename__ = "amml_model_versions"
    __table_args__ = (sa.UniqueConstraint("name", "version", name="uq_amml_version_name_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), index=True)
    version: Mapped[int] = mapped_column(sa.Integer)
    definition_id: Mapped[int] = mapped_column(sa.ForeignKey("amml_model_definitions.id"))
    artifact_uri: Mapped[str] = mapped_column(sa.Text)
    artifact_size: Mapped[int] = mapped_column(sa.BigInteger)
    artifact_sha256: Mapped[str] = mapped_column(sa.String(64))
    scaler: Mapped[str | None] = mapped_column(sa.Text)  # JSON: statistics the model was trained with
    metrics: Mapped[str | None] = mapped_column(sa.Text)  # JSON
    params: Mapped[str | None] = mapped_column(sa.Text)  # JSON: the training parameters (None before 0004)
    plots: Mapped[str | None] = mapped_column(sa.Text)  # JSON: name → URI of a PNG
    intervals: Mapped[str | None] = mapped_column(sa.Text)  # JSON: prediction intervals (None before 0005)
    dag_id: Mapped[str | None] = mapped_column(sa.String(250))
    run_id: Mapped[str | None] = mapped_column(sa.String(250))
    task_id: Mapped[str | None] = mapped_column(sa.String(250))
    data_interval_start: Mapped[str | None] = mapped_column(sa.String(40))
    data_interval_end: Mapped[str | None] = mapped_column(sa.String(40))
    source_hash: Mapped[str | None] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(20), default="ready")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class ModelAlias(Base):
    """A movable name for one version: `ett@champion`."""

    __tablename__ = "amml_model_aliases"

    name: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    alias: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class ModelTag(Base):
    __tablename__ = "amml_model_tags"

    name: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)


class ArtifactWrite(Base):
    """A folder this registry is writing (or failed to write) and that no version owns yet: what `gc()` may
    remove. The row is deleted in the transaction that records the version, so a registry only ever collects
    folders it created itself, even when another registry (another database) shares the artifact root."""

    __tablename__ = "amml_artifact_writes"

    key: Mapped[str] = mapped_column(sa.String(250), primary_key=True)  # `name/<uuid>`, relative to the root
    folder_uri: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class AliasHistory(Base):
    """One move of an alias: which version it pointed at before and after, who moved it, when and why.
    Rows are only ever inserted, in the transaction that moves the alias."""

    __tablename__ = "amml_model_alias_history"
    __table_args__ = (sa.Index("ix_amml_alias_history_name_alias", "name", "alias"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    alias: Mapped[str] = mapped_column(sa.String(100))
    version: Mapped[int] = mapped_column(sa.Integer)
    previous_version: Mapped[int | None] = mapped_column(sa.Integer)
    set_by: Mapped[str | None] = mapped_column(sa.String(250))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    set_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
