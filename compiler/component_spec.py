"""How a component is declared: its kind, its typed parameters, and the events it emits or listens to.

Only declarations, no registry: ``builtin_components`` lists the built-in ones with these types and
``components`` collects them (built-ins and entry points) into the registry the compiler looks names up in.
The runtime classes live in ``airflow_amml.components``; the compiler only needs these declarations, so it
stays free of pandas/TensorFlow imports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Kind(str, Enum):
    INGRESS = "ingress"
    PROGRESS = "progress"
    EGRESS = "egress"


class ParamType(str, Enum):
    """Types a parameter can declare. ``EXPR`` and ``COND`` are evaluated per record; the rest once."""

    INT = "int"
    FLOAT = "float"
    STR = "str"
    BOOL = "bool"
    STR_LIST = "list[str]"
    FLOAT_LIST = "list[float]"
    ANY = "any"  # any constant (including lists and dicts)
    EXPR = "expr"  # a per-record expression; its value is a column
    COND = "cond"  # a per-record condition; null counts as false

    @property
    def per_record(self) -> bool:
        return self in (ParamType.EXPR, ParamType.COND)


class _Required:
    """Marks a parameter without a default. A fixed repr: it is part of the registry's fingerprint, which
    keys the compiled-program cache and so must be the same in every process."""

    def __repr__(self) -> str:
        return "<required>"


_REQUIRED = _Required()


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: ParamType
    doc: str
    default: Any = _REQUIRED
    choices: tuple[str, ...] = ()
    # a constant value's further check: None when fine, else (problem, hint); see compiler/value_checks.py
    check: Callable[[Any], tuple[str, str] | None] | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


def param(
    name: str,
    type: ParamType | str,
    doc: str,
    default: Any = _REQUIRED,
    choices: Iterable[str] = (),
    check: Callable[[Any], tuple[str, str] | None] | None = None,
) -> ParamSpec:
    """Declare a parameter: ``param("epoch", "int", "number of epochs", default=20)``."""
    return ParamSpec(name, ParamType(type), doc, default, tuple(choices), check)


@dataclass(frozen=True)
class ComponentSpec:
    """A component as the compiler sees it.

    ``extra`` gives the type of parameters not declared in ``params`` (e.g. ``derive`` takes any
    ``new_column=expression``); None means undeclared parameters are an error.
    ``impl`` is the ``module:Class`` path of the runtime implementation, imported only when run.
    ``emits`` and ``listens`` name the ``str`` parameter whose value is the event this component sends
    (alert's ``event``) or waits for (snapshot's ``on``): the executor wires event queues by them.
    ``reads_models`` names the ``str`` parameters whose value is a registered model (``ett@champion``): a run
    resolves each once, when it starts, so that every component of the run reads the same version.
    """

    name: str
    kind: Kind
    doc: str
    params: tuple[ParamSpec, ...] = ()
    impl: str = ""
    extra: ParamType | None = None
    extra_doc: str = ""
    emits: str | None = None
    listens: str | None = None
    reads_models: tuple[str, ...] = ()
    _by_name: dict[str, ParamSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {p.name: p for p in self.params})
        roles = [("emits", self.emits, "the event's name"), ("listens", self.listens, "the event's name")]
        roles += [("reads_models", name, "a registered model") for name in self.reads_models]
        for role, name, value in roles:
            declared = self._by_name.get(name) if name is not None else None
            if name is not None and (declared is None or declared.type is not ParamType.STR):
                raise ValueError(
                    f"component `{self.name}` declares {role}={name!r}, which must name one of its `str` "
                    f"parameters (the one whose value is {value})"
                )

    def param(self, name: str) -> ParamSpec | None:
        found = self._by_name.get(name)
        if found is None and self.extra is not None:
            return ParamSpec(name, self.extra, self.extra_doc)
        return found
