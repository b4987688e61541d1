"""Workflow bytecode and callback bytecode: opcode tables, code objects, a stable serialised form, and a
disassembler whose listing reads like the paper's Fig. 5.

Callback bytecode (one :class:`Code` per component) is a small stack machine::

    LOAD_CONST k      push consts[k]              LOAD_VALUE n   push record field names[n]
    LOAD_PARAM n      push run parameter names[n] ASSIGN n       pop, bind component parameter names[n]
    ADD SUB MUL DIV MOD POW NEG POS NOT           CMP_EQ CMP_NE CMP_LT CMP_LE CMP_GT CMP_GE
    JUMP_IF_FALSE t   if TOS is false, jump to t (TOS stays: it is the result of `and`)
    JUMP_IF_TRUE t    if TOS is true, jump to t  (TOS stays: it is the result of `or`)
    AND OR            combine the two operands with three-valued logic (when no jump was taken)
    CALL n, argc      call built-in names[n] with argc arguments
    CALL_METHOD n, argc   call whitelisted method names[n] on the object below the arguments

Instructions ``[0, static_end)`` read no record field: the runtime evaluates them once per run (they may
read run parameters), the rest once per record or, vectorised, once per batch.

Workflow bytecode (one list per pipeline) builds the component graph::

    WF_NEW_FLOW               start a statement (no upstream component yet)
    WF_MAKE_COMPONENT name    create a component instance
    WF_DEF_CALLBACK k         define callbacks[k] (the listing shows it inline, like Fig. 5)
    WF_ADD_CALLBACK           attach the defined callback to the component being made
    WF_ADD_COMPONENT          append it to the flow: upstream → component
    WF_LOAD_FLOW name         continue from a named flow (a second reader makes it a split)
    WF_JOIN a,b,...           merge named flows into one
    WF_SPLIT a,b,...          give the current flow several names (each reader gets every record)
    WF_ASSIGN name            name the current flow
    WF_END                    end of the pipeline
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

# The version of the serialised form (Program.to_json) and of the opcode numbers in it. Bump it whenever
# an opcode is renumbered, removed or added, or its flags change: cached programs of another version are
# then recompiled instead of being run with the wrong meaning (tests/compiler/test_bytecode.py pins the table).
FORMAT_VERSION = 1

# ---- callback opcodes --------------------------------------------------------------------------
# Numbered explicitly, as in CPython's dis/opcode.py: the number is what a serialised program stores, so a
# new opcode takes a new number and never shifts the others.

OPNAMES: dict[int, str] = {}
OPCODES: dict[str, int] = {}
HAS_CONST: set[int] = set()
HAS_NAME: set[int] = set()
HAS_JUMP: set[int] = set()
HAS_ARGC: set[int] = set()


def _def_op(name: str, code: int, *flags: set[int]) -> int:
    if code in OPNAMES or name in OPCODES:
        raise ValueError(f"opcode {name} = {code} clashes with {OPNAMES.get(code, name)}")
    OPNAMES[code] = name
    OPCODES[name] = code
    for flag in flags:
        flag.add(code)
    return code


LOAD_CONST = _def_op("LOAD_CONST", 0, HAS_CONST)
LOAD_VALUE = _def_op("LOAD_VALUE", 1, HAS_NAME)
LOAD_PARAM = _def_op("LOAD_PARAM", 2, HAS_NAME)
ASSIGN = _def_op("ASSIGN", 3, HAS_NAME)
ADD = _def_op("ADD", 4)
SUB = _def_op("SUB", 5)
MUL = _def_op("MUL", 6)
DIV = _def_op("DIV", 7)
MOD = _def_op("MOD", 8)
POW = _def_op("POW", 9)
NEG = _def_op("NEG", 10)
POS = _def_op("POS", 11)
NOT = _def_op("NOT", 12)
CMP_EQ = _def_op("CMP_EQ", 13)
CMP_NE = _def_op("CMP_NE", 14)
CMP_LT = _def_op("CMP_LT", 15)
CMP_LE = _def_op("CMP_LE", 16)
CMP_GT = _def_op("CMP_GT", 17)
CMP_GE = _def_op("CMP_GE", 18)
JUMP_IF_FALSE = _def_op("JUMP_IF_FALSE", 19, HAS_JUMP)
JUMP_IF_TRUE = _def_op("JUMP_IF_TRUE", 20, HAS_JUMP)
AND = _def_op("AND", 21)
OR = _def_op("OR", 22)
CALL = _def_op("CALL", 23, HAS_NAME, HAS_ARGC)
CALL_METHOD = _def_op("CALL_METHOD", 24, HAS_NAME, HAS_ARGC)


BINARY_OPS = {"+": ADD, "-": SUB, "*": MUL, "/": DIV, "%": MOD, "**": POW}
COMPARE_OPS = {"==": CMP_EQ, "!=": CMP_NE, "<": CMP_LT, "<=": CMP_LE, ">": CMP_GT, ">=": CMP_GE}
UNARY_OPS = {"-": NEG, "+": POS}


@dataclass(frozen=True, slots=True)
class Instr:
    op: int
    arg: int = 0
    argc: int = 0

    @property
    def opname(self) -> str:
        return OPNAMES[self.op]


@dataclass(frozen=True)
class Code:
    """A compiled callback script: the parameters of one component."""

    consts: tuple[Any, ...]
    names: tuple[str, ...]
    instructions: tuple[Instr, ...]
    static_end: int
    fields: tuple[str, ...] = ()  # record fields read (in order of first use)
    params: tuple[str, ...] = ()  # run parameters read
    assigned: tuple[str, ...] = ()  # component parameters bound, in order
    static_values: dict[str, Any] = field(default_factory=dict)  # params folded to constants

    @property
    def per_record(self) -> tuple[str, ...]:
        """Names of the parameters whose value depends on the record."""
        return tuple(n for n in self.assigned if n not in self._static_names())

    def _static_names(self) -> set[str]:
        return {self.names[i.arg] for i in self.instructions[: self.static_end] if i.op == ASSIGN}

    def to_dict(self) -> dict[str, Any]:
        return {
            "consts": list(self.consts),
            "names": list(self.names),
            "code": [[i.op, i.arg, i.argc] if i.argc else [i.op, i.arg] for i in self.instructions],
            "static_end": self.static_end,
            "fields": list(self.fields),
            "params": list(self.params),
            "assigned": list(self.assigned),
            "static_values": self.static_values,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Code:
        return cls(
            consts=tuple(data["consts"]),
            names=tuple(data["names"]),
            instructions=tuple(Instr(*i) for i in data["code"]),
            static_end=data["static_end"],
            fields=tuple(data["fields"]),
            params=tuple(data["params"]),
            assigned=tuple(data["assigned"]),
            static_values=data["static_values"],
        )


# ---- workflow bytecode --------------------------------------------------------------------------

WF_OPS = (
    "WF_NEW_FLOW",
    "WF_MAKE_COMPONENT",
    "WF_DEF_CALLBACK",
    "WF_ADD_CALLBACK",
    "WF_ADD_COMPONENT",
    "WF_LOAD_FLOW",
    "WF_JOIN",
    "WF_SPLIT",
    "WF_ASSIGN",
    "WF_END",
)


@dataclass(frozen=True, slots=True)
class WfInstr:
    op: str
    arg: Any = None
    line: int = 0
    column: int = 0


FOREACH_KINDS = ("list", "param", "catalog", "pipeline")
# The most items one fanned-out pipeline runs for: Airflow's default `[core] max_map_length`, and the most an
# `items` sink collects (each item is a mapped task instance; more is a job for a loop inside one pipeline).
MAX_FANOUT_ITEMS = 1024


@dataclass(frozen=True)
class ForEach:
    """``pipeline p for VAR in ITEMS``: the pipeline runs once per item, with ``VAR`` bound to it.

    ``value`` by ``kind``: "list" the items (a tuple of strings and numbers, known at compile time); "param" the
    name of the run parameter holding the list; "catalog" the fnmatch glob of catalog ids; "pipeline"
    ``(upstream pipeline, column)``, the distinct values its `items` sink collected.
    """

    variable: str
    kind: str
    value: Any

    @property
    def text(self) -> str:
        """ITEMS as the file writes it: `catalog("nab/*")`, `params.series`, `find.series`, `["a", "b"]`."""
        if self.kind == "param":
            return f"params.{self.value}"
        if self.kind == "catalog":
            return f"catalog({json.dumps(self.value, ensure_ascii=False)})"
        if self.kind == "pipeline":
            return ".".join(self.value)
        return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in self.value) + "]"

    def to_dict(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"variable": self.variable, "kind": self.kind, "value": value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForEach:
        value = data["value"]
        return cls(data["variable"], data["kind"], tuple(value) if isinstance(value, list) else value)


@dataclass(frozen=True)
class PipelineCode:
    name: str
    after: tuple[str, ...]
    code: tuple[WfInstr, ...]
    callbacks: tuple[Code, ...]
    line: int = 1
    foreach: ForEach | None = None  # a fanned-out pipeline's `for VAR in ITEMS`

    def to_dict(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "after": list(self.after),
            "line": self.line,
            "code": [[i.op, i.arg, i.line, i.column] for i in self.code],
            "callbacks": [c.to_dict() for c in self.callbacks],
        }
        if self.foreach is not None:  # absent otherwise: a single-series program serialises as before
            data["foreach"] = self.foreach.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineCode:
        foreach = data.get("foreach")
        return cls(
            name=data["name"],
            after=tuple(data["after"]),
            code=tuple(WfInstr(*i) for i in data["code"]),
            callbacks=tuple(Code.from_dict(c) for c in data["callbacks"]),
            line=data["line"],
            foreach=ForEach.from_dict(foreach) if foreach is not None else None,
        )


@dataclass(frozen=True)
class Program:
    """Everything compiled from one .amml file."""

    filename: str
    source_hash: str
    pipelines: tuple[PipelineCode, ...]
    dag: dict[str, Any] | None = None
    dag_name: str | None = None
    source: str = ""

    def pipeline(self, name: str) -> PipelineCode:
        for p in self.pipelines:
            if p.name == name:
                return p
        from .errors import AmmlNameError, did_you_mean, one_of

        names = [p.name for p in self.pipelines]
        raise AmmlNameError(
            f"no pipeline `{name}` in {self.filename}; it has {one_of(names)}",
            filename=self.filename,
            hint=did_you_mean(name, names),
        )

    def to_json(self) -> str:
        """The stable serialised form: same source and compiler → same bytes."""
        return json.dumps(
            {
                "format": FORMAT_VERSION,
                "filename": self.filename,
                "source_hash": self.source_hash,
                "dag_name": self.dag_name,
                "dag": self.dag,
                "pipelines": [p.to_dict() for p in self.pipelines],
                "source": self.source,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> Program:
        data = json.loads(text)
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"compiled program has format {data.get('format')}, expected {FORMAT_VERSION}")
        return cls(
            filename=data["filename"],
            source_hash=data["source_hash"],
            pipelines=tuple(PipelineCode.from_dict(p) for p in data["pipelines"]),
            dag=data["dag"],
            dag_name=data["dag_name"],
            source=data["source"],
        )


# ---- disassembler -------------------------------------------------------------------------------


def const_repr(value: Any) -> str:
    """Fig. 5's constant-table entry: `<length> <type letter><value>` (s=str, i=int, f=float, ...)."""
    if value is None:
        return "0 n"
    if isinstance(value, bool):
        return f"1 b{'true' if value else 'false'}"
    if isinstance(value, int):
        text = str(value)
        return f"{len(text)} i{text}"
    if isinstance(value, float):
        text = repr(value)
        return f"{len(text)} f{text}"
    if isinstance(value, str):
        return f"{len(value)} s{value}"
    text = json.dumps(value, ensure_ascii=False)
    return f"{len(text)} l{text}"


def callback_lines(code: Code, indent: str = "    ") -> Iterator[str]:
    yield f"{indent}CONST_DEF_START"
    for i, value in enumerate(code.consts):
        yield f"{indent}{i} {const_repr(value)}"
    yield f"{indent}CONST_DEF_END"
    yield f"{indent}INSTRUCTION_START"
    targets = {ins.arg for ins in code.instructions if ins.op in HAS_JUMP}
    for offset, ins in enumerate(code.instructions):
        mark = ">>" if offset in targets else "  "
        yield f"{indent}{mark}{offset:>3} {_instr_text(code, ins)}"
        if offset + 1 == code.static_end and code.static_end < len(code.instructions):
            yield f"{indent}      ; ---- per record ----"
    yield f"{indent}INSTRUCTION_END"


def _instr_text(code: Code, ins: Instr) -> str:
    name = ins.opname
    if ins.op in HAS_CONST:
        return f"{name:<14} {ins.arg:<4} ({code.consts[ins.arg]!r})"
    if ins.op in HAS_ARGC:
        return f"{name:<14} {code.names[ins.arg]} {ins.argc}"
    if ins.op in HAS_NAME:
        return f"{name:<14} {code.names[ins.arg]}"
    if ins.op in HAS_JUMP:
        return f"{name:<14} {ins.arg}"
    return name


def disassemble_pipeline(pipeline: PipelineCode) -> str:
    after = f" after {', '.join(pipeline.after)}" if pipeline.after else ""
    foreach = f" for {pipeline.foreach.variable} in {pipeline.foreach.text}" if pipeline.foreach else ""
    lines = [f"; pipeline {pipeline.name}{foreach}{after}"]
    for ins in pipeline.code:
        arg = "" if ins.arg is None else f" {ins.arg}"
        where = f"  ; line {ins.line}" if ins.op == "WF_MAKE_COMPONENT" else ""
        lines.append(f"{ins.op}{arg}{where}")
        if ins.op == "WF_DEF_CALLBACK":
            lines.extend(callback_lines(pipeline.callbacks[ins.arg]))
    return "\n".join(lines)


def disassemble(program: Program) -> str:
    return "\n\n".join(disassemble_pipeline(p) for p in program.pipelines) + "\n"


def in_dependency_order(pipelines: Sequence[PipelineCode]) -> list[PipelineCode]:
    """The pipelines in file order, except that each comes after those it runs `after` (a fan-out over
    `find.series` is after `find`) — the order Airflow runs their tasks in."""
    by_name = {p.name: p for p in pipelines}
    ordered: list[PipelineCode] = []
    placed: set[str] = set()

    def place(pipeline: PipelineCode) -> None:
        if pipeline.name in placed:
            return
        placed.add(pipeline.name)  # the compiler refuses cycles
        for upstream in pipeline.after:
            if upstream in by_name:
                place(by_name[upstream])
        ordered.append(pipeline)

    for pipeline in pipelines:
        place(pipeline)
    return ordered
