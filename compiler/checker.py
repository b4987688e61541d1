"""AST → checked program: resolves flows and components, checks parameters, and emits workflow bytecode.

Errors are collected (one file can report many) and raised together as
:class:`~compiler.errors.AmmlCompileErrors`, or alone when there is only one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from . import ast
from . import bytecode as bc
from .components import ComponentRegistry, ComponentSpec, Kind, ParamSpec, ParamType
from .dag_block import check_dag_settings, check_file_dag_id, items_task_id, task_id_problem
from .errors import (
    AmmlCompileErrors,
    AmmlFlowError,
    AmmlLimitError,
    AmmlNameError,
    AmmlTypeError,
    SourceError,
    did_you_mean,
    one_of,
)
from .expressions import compile_callback, fold, reads

MAIN_PIPELINE = "main"
MAX_REPORTED_ERRORS = 100
# A pipeline runs one process per component, and each pipeline is an Airflow task: nothing hand-written
# comes near these, and a generated file that does must not fork thousands of processes.
MAX_COMPONENTS_PER_PIPELINE = 64
MAX_COMPONENTS_PER_FILE = 256
MAX_PIPELINES_PER_FILE = 64
MAX_STATEMENTS_PER_PIPELINE = 256  # flow statements, also those without a component (`b = a`)
MAX_PARAMS_PER_COMPONENT = 256  # `derive` and `rename` take any names
MAX_CATALOG_GLOB = 200  # `catalog("...")`: what airflow_amml.components.catalog.matching_ids accepts
SPLIT_HINT = ("a pipeline runs one process per component: split the work into pipelines that hand records "
              "over through a sink and a source (`pipeline b after a { ... }`), or merge steps "
              "(one `derive` computes many columns, one `filter` can test many conditions with `and`)")


def _err(cls: type[SourceError], msg: str, pos: ast.Pos, hint: str | None = None) -> SourceError:
    return cls(msg, line=pos.line, column=pos.column, hint=hint)


@dataclass
class _Scope:
    """One pipeline: its statements and the flows they name."""

    name: str
    pos: ast.Pos
    after: tuple[tuple[str, ast.Pos], ...] = ()
    statements: list[ast.Statement] = field(default_factory=list)
    flows: dict[str, tuple[ast.Statement, ast.Pos]] = field(default_factory=dict)
    foreach: ast.ForEach | None = None
    loop_used: bool = False  # is the loop variable a parameter value somewhere (`source id=series`)?
    known_items: tuple[Any, ...] = ()  # the items known now (a literal list, a param's default): type-checked


class Checker:
    def __init__(self, module: ast.Module, registry: ComponentRegistry, source: str) -> None:
        self.module = module
        self.registry = registry
        self.source = source
        self.errors: list[SourceError] = []
        self.declared_params: set[str] | None = None
        self.param_defaults: dict[str, Any] = {}
        self.unchecked_pipelines: set[str] = set()
        self.scopes: dict[str, _Scope] = {}

    def error(self, error: SourceError) -> None:
        self.errors.append(error)

    # ---- entry point ------------------------------------------------------------------------------

    def check(self) -> bc.Program:
        scopes, dag_block = self._collect()
        dag_settings = None
        if dag_block is not None:
            dag_settings, self.declared_params, errors = check_dag_settings(dag_block)
            self.param_defaults = dict(dag_settings.get("params", {}))
            self.errors.extend(errors)
        if dag_block is None or dag_block.name is None:  # the file name is the DAG id: Airflow must accept it
            self.errors.extend(check_file_dag_id(self.module.filename))
        pipelines = []
        self.scopes = {s.name: s for s in scopes}
        for scope in self._within_limits(scopes):
            try:
                pipelines.append(self._pipeline(scope))
            except SourceError as exc:  # a pipeline too broken to continue; others are still checked
                self.error(exc)
        self._check_pipeline_order(scopes)
        if dag_block is not None and dag_settings and "map_concurrency" in dag_settings \
                and not any(s.foreach for s in scopes):
            where = next(s.pos for s in dag_block.settings if s.name == "map_concurrency")
            self.error(_err(AmmlFlowError, "`map_concurrency` limits the items of a fanned-out pipeline running "
                            "at once, and no pipeline here is fanned out", where,
                            "remove it, or fan a pipeline out: `pipeline p for series in catalog(\"nab/*\") { ... }`"))
        if self.errors:
            self._raise()
        return bc.Program(
            filename=self.module.filename,
            source_hash=hashlib.sha256(self.source.encode()).hexdigest(),
            pipelines=tuple(pipelines),
            dag=dag_settings,
            dag_name=dag_block.name if dag_block else None,
            source=self.source,
        )

    def _raise(self) -> None:
        errors = sorted(self.errors, key=lambda e: (e.line or 0, e.column or 0))
        if len(errors) > MAX_REPORTED_ERRORS:  # a flood of errors helps nobody and costs time to render
            rest = len(errors) - MAX_REPORTED_ERRORS
            errors = errors[:MAX_REPORTED_ERRORS]
            last = errors[-1]
            errors.append(AmmlFlowError(f"… and {rest} more errors", line=last.line, column=last.column,
                                        hint="fix the errors above first"))
        for e in errors:
            e.located(self.module.filename, self.source)
        if len(errors) == 1:
            raise errors[0]
        raise AmmlCompileErrors(errors)

    def _collect(self) -> tuple[list[_Scope], ast.DagBlock | None]:
        main = _Scope(MAIN_PIPELINE, ast.NOWHERE)
        scopes: dict[str, _Scope] = {}
        dag_block = None
        too_many = False
        for item in self.module.items:
            if isinstance(item, ast.DagBlock):
                if dag_block is not None:
                    self.error(_err(AmmlFlowError, "a file can have only one dag block", item.pos,
                                    "put each DAG in its own .amml file"))
                dag_block = item
            elif isinstance(item, ast.PipelineBlock):
                if item.name in scopes:
                    self.error(_err(AmmlNameError, f"pipeline `{item.name}` is defined twice", item.pos))
                    continue
                problem = task_id_problem(item.name)
                if problem is not None:  # each pipeline is a task, named after it
                    self.error(_err(AmmlNameError, f"the pipeline name {problem}", item.pos,
                                    "use a shorter name: it becomes the Airflow task id"))
                if len(scopes) >= MAX_PIPELINES_PER_FILE:
                    self.unchecked_pipelines.add(item.name)  # still a name `after` may refer to
                    if not too_many:  # reported once, at the first one too many
                        self.error(_err(AmmlLimitError, f"more than {MAX_PIPELINES_PER_FILE} pipelines in one "
                                        "file", item.pos, "each pipeline is an Airflow task: put related "
                                        "pipelines in files of their own (one DAG per file)"))
                    too_many = True
                    continue
                scopes[item.name] = _Scope(item.name, item.pos, _with_items_upstream(item), list(item.statements),
                                           foreach=item.foreach)
            else:
                if not main.statements:
                    main.pos = item.pos
                main.statements.append(item)
        if main.statements:
            if MAIN_PIPELINE in scopes:
                self.error(_err(AmmlNameError, "statements outside a pipeline block form the pipeline "
                                f"`{MAIN_PIPELINE}`, and a block of that name exists too",
                                scopes[MAIN_PIPELINE].pos, "put the loose statements into a pipeline block"))
            else:
                scopes = {MAIN_PIPELINE: main, **scopes}
        if not scopes and not self.errors:
            self.error(AmmlFlowError("the file defines no pipeline", line=1, column=1,
                                     hint='write one, e.g. `source id="ett" | minmax_scaler | print`'))
        return list(scopes.values()), dag_block

    def _within_limits(self, scopes: list[_Scope]) -> list[_Scope]:
        """The pipelines whose size is within the limits; an error at the first component (or statement)
        too many for the others, which are not checked further."""
        kept: list[_Scope] = []
        in_file = 0
        for scope in scopes:
            if len(scope.statements) > MAX_STATEMENTS_PER_PIPELINE:
                stmt = scope.statements[MAX_STATEMENTS_PER_PIPELINE]
                self.error(_err(AmmlLimitError, f"pipeline `{scope.name}` has more than "
                                f"{MAX_STATEMENTS_PER_PIPELINE} statements", stmt.pos, SPLIT_HINT))
                continue
            stages = self._components(scope)
            if len(stages) > MAX_COMPONENTS_PER_PIPELINE:
                self.error(_err(AmmlLimitError, f"pipeline `{scope.name}` has more than "
                                f"{MAX_COMPONENTS_PER_PIPELINE} components ({len(stages)})",
                                stages[MAX_COMPONENTS_PER_PIPELINE].pos, SPLIT_HINT))
                continue
            if in_file + len(stages) > MAX_COMPONENTS_PER_FILE:
                self.error(_err(AmmlLimitError, f"the file has more than {MAX_COMPONENTS_PER_FILE} components",
                                stages[MAX_COMPONENTS_PER_FILE - in_file].pos,
                                "put some of its pipelines in another .amml file (each file is one DAG)"))
                continue
            in_file += len(stages)
            kept.append(scope)
        return kept

    def _components(self, scope: _Scope) -> list[ast.Step]:
        """The stages of a pipeline that make a component (a process), in the order they are written."""
        stages: list[ast.Step] = []
        for stmt in scope.statements:
            for stage in (stmt.pipe.head, *stmt.pipe.steps):
                if isinstance(stage, ast.Step) and stage.name in self.registry:
                    stages.append(stage)
        return stages

    def _check_pipeline_order(self, scopes: list[_Scope]) -> None:
        names = {s.name for s in scopes} | self.unchecked_pipelines
        deps = {s.name: [n for n, _ in s.after] for s in scopes}
        for scope in scopes:
            for name, pos in scope.after:
                if name not in names:
                    self.error(_err(AmmlNameError, f"pipeline `{scope.name}` runs after `{name}`, which is not "
                                    "defined", pos, did_you_mean(name, names) or f"pipelines: {one_of(names)}"))
        cycle = _find_cycle(deps)
        if cycle:
            first = next(s for s in scopes if s.name == cycle[0])
            self.error(_err(AmmlFlowError, "pipelines depend on each other in a cycle: " + " → ".join(cycle),
                            first.pos))

    # ---- one pipeline -----------------------------------------------------------------------------

    def _pipeline(self, scope: _Scope) -> bc.PipelineCode:
        if not scope.statements:
            raise _err(AmmlFlowError, f"pipeline `{scope.name}` is empty", scope.pos)
        foreach = self._foreach(scope) if scope.foreach is not None else None
        self._check_items_sinks(scope)
        self._collect_flows(scope)
        order = self._order_statements(scope)
        emitter = _Emitter()
        used: set[str] = set()
        for stmt in order:
            self._statement(scope, stmt, emitter, used)
        for name, (stmt, pos) in scope.flows.items():
            if name not in used and not self._ends_in_egress(stmt, name):
                self.error(_err(AmmlFlowError, f"flow `{name}` is defined but never used", pos,
                                f"read it in another pipe, e.g. `{name} | print`, or remove it"))
        emitter.wf("WF_END", None, scope.pos)
        if scope.foreach is not None and not scope.loop_used:
            var = scope.foreach.variable
            self.error(_err(AmmlFlowError, f"pipeline `{scope.name}` runs for each `{var}`, but no parameter "
                            f"uses `{var}`: every item would run the very same pipeline", scope.foreach.pos,
                            f"pass the item as a whole parameter value, e.g. `source id={var}`"))
        return bc.PipelineCode(
            name=scope.name,
            after=tuple(n for n, _ in scope.after),
            code=tuple(emitter.code),
            callbacks=tuple(emitter.callbacks),
            line=scope.pos.line,
            foreach=foreach,
        )

    # ---- fan-out: `pipeline p for VAR in ITEMS` -----------------------------------------------------

    def _foreach(self, scope: _Scope) -> bc.ForEach | None:
        """The checked `for VAR in ITEMS` of ``scope`` (None, with the errors recorded, when it is wrong)."""
        loop = scope.foreach
        assert loop is not None
        problems = len(self.errors)
        if len(loop.variable) > MAX_LOOP_VARIABLE:
            self.error(_err(AmmlLimitError, f"the loop variable `{loop.variable[:20]}…` has {len(loop.variable)} "
                            f"characters; at most {MAX_LOOP_VARIABLE}", loop.pos,
                            "a short name such as `series`: it names each task instance (`series=…`) and a column"))
        if loop.variable in self.param_defaults:
            self.error(_err(AmmlNameError, f"the loop variable `{loop.variable}` has the name of a run parameter",
                            loop.pos, f"rename one of them: `params.{loop.variable}` and the item `{loop.variable}` "
                            "would mean different things"))
        if loop.kind != "list":
            resolver = items_task_id(scope.name)
            if resolver in self.scopes or task_id_problem(resolver) is not None:
                self.error(_err(AmmlNameError, f"pipeline `{scope.name}` needs the task `{resolver}` to resolve its "
                                "items, and " + ("a pipeline has that name" if resolver in self.scopes else
                                                 "that is too long for a task id"), loop.items_pos,
                                "rename one of the pipelines"))
        value = {"list": self._foreach_list, "param": self._foreach_param, "catalog": self._foreach_catalog,
                 "pipeline": self._foreach_pipeline}[loop.kind](loop, scope)
        if value is None or len(self.errors) > problems:
            return None
        if loop.kind == "list":
            scope.known_items = value
        elif loop.kind == "param":
            scope.known_items = tuple(self.param_defaults[value])
        return bc.ForEach(loop.variable, loop.kind, value)

    def _foreach_list(self, loop: ast.ForEach, scope: _Scope) -> tuple | None:
        node = loop.value
        if not node.items:
            self.error(_err(AmmlFlowError, "the list of items is empty: the pipeline would never run", loop.items_pos,
                            'name at least one item, e.g. `for series in ["nab/realKnownCause/nyc_taxi"]`'))
            return None
        if len(node.items) > bc.MAX_FANOUT_ITEMS:
            pos = node.items[bc.MAX_FANOUT_ITEMS].pos
            self.error(_err(AmmlLimitError, f"{len(node.items)} items; a fanned-out pipeline runs for at most "
                            f"{bc.MAX_FANOUT_ITEMS}", pos, "each item is an Airflow task instance: split the list "
                            "over several pipelines, or select fewer series (`catalog(\"nab/realTweets/*\")`)"))
            return None
        items = []
        for item in node.items:
            try:
                value = fold(item)
            except SourceError as exc:
                self.error(exc)
                return None
            if not isinstance(value, ast.Const) or not _is_item(value.value):
                self.error(_err(AmmlTypeError, "an item must be a string or a number", item.pos,
                                'e.g. `for series in ["nab/realKnownCause/nyc_taxi", "nab/realTweets/KO"]`'))
                return None
            if str(value.value) in {str(i) for i in items}:
                self.error(_err(AmmlNameError, f"the item {value.value!r} is in the list twice", item.pos,
                                "name each item once: its task instance, rows, alerts and models are kept by item"))
                return None
            items.append(value.value)
        return tuple(items)

    def _foreach_param(self, loop: ast.ForEach, scope: _Scope) -> str | None:
        name = loop.value
        if self.declared_params is None or name not in self.declared_params:
            self.error(_err(AmmlNameError, f"run parameter `params.{name}` is not declared in the dag block",
                            loop.items_pos, did_you_mean(name, self.declared_params or ())
                            or f'declare it with the default list: params = {{{name}: ["a", "b"]}}'))
            return None
        default = self.param_defaults.get(name)
        if not isinstance(default, list) or not default or not all(_is_item(v) for v in default):
            from .semantics import type_name

            self.error(_err(AmmlTypeError, f"`params.{name}` must default to a non-empty list of strings or "
                            f"numbers to fan out over; its default is {type_name(default)} {_short(default)}",
                            loop.items_pos, f'e.g. params = {{{name}: ["nab/realKnownCause/nyc_taxi"]}}'))
            return None
        twice = _first_repeated(default)
        if twice is not None:
            self.error(_err(AmmlNameError, f"`params.{name}` defaults to a list holding {twice!r} twice",
                            loop.items_pos, "name each item once: its rows, alerts and models are kept by item"))
            return None
        if len(default) > bc.MAX_FANOUT_ITEMS:
            self.error(_err(AmmlLimitError, f"`params.{name}` defaults to {len(default)} items; a fanned-out "
                            f"pipeline runs for at most {bc.MAX_FANOUT_ITEMS}", loop.items_pos,
                            "split the list over several pipelines"))
            return None
        return name

    def _foreach_catalog(self, loop: ast.ForEach, scope: _Scope) -> str | None:
        call = loop.value
        args = [fold(a) if not isinstance(a, ast.ListExpr) else a for a in call.args]
        if len(args) != 1 or not isinstance(args[0], ast.Const) or not isinstance(args[0].value, str) \
                or not args[0].value.strip():
            self.error(_err(AmmlTypeError, "`catalog(...)` takes one string: a glob of catalog source ids",
                            loop.items_pos, 'e.g. `catalog("nab/realKnownCause/*")` (`*` any text, `?` one '
                            'character, `[ab]` one of them)'))
            return None
        glob = args[0].value
        if len(glob) > MAX_CATALOG_GLOB:
            self.error(_err(AmmlLimitError, f"the catalog glob is {len(glob)} characters long; at most "
                            f"{MAX_CATALOG_GLOB}",
                            loop.items_pos, "use `*` to shorten it"))
            return None
        return glob

    def _foreach_pipeline(self, loop: ast.ForEach, scope: _Scope) -> tuple[str, str] | None:
        upstream, column = loop.value
        other = self.scopes.get(upstream)
        if other is None or upstream == scope.name:
            names = [n for n in self.scopes if n != scope.name]
            self.error(_err(AmmlNameError, f"`{upstream}.{column}`: there is no other pipeline `{upstream}`",
                            loop.items_pos, did_you_mean(upstream, names) or
                            (f"pipelines: {one_of(names)}" if names else
                             f'define one that ends with `| items column="{column}"`')))
            return None
        if other.foreach is not None:
            self.error(_err(AmmlFlowError, f"`{upstream}.{column}`: pipeline `{upstream}` is fanned out itself, "
                            "so it has no single list of items", loop.items_pos,
                            f"fan out over `{upstream}`'s own items (`{other.foreach.variable}`) instead"))
            return None
        columns = [c for c, _ in _items_sinks(other)]
        if column not in columns:
            have = f"its `items` sink collects {one_of(columns)}" if columns else "it has no `items` sink"
            self.error(_err(AmmlFlowError, f"`{upstream}.{column}`: pipeline `{upstream}` must end with "
                            f'`| items column="{column}"`; {have}', loop.items_pos,
                            f'end a pipe of `{upstream}` with `| items column="{column}"`'))
            return None
        return (upstream, column)

    def _check_items_sinks(self, scope: _Scope) -> None:
        sinks = _items_sinks(scope)
        if len(sinks) > 1:
            self.error(_err(AmmlFlowError, f"pipeline `{scope.name}` has more than one `items` sink", sinks[1][1],
                            "a pipeline hands one list of items on: keep one `items` (or split the pipeline)"))

    def _collect_flows(self, scope: _Scope) -> None:
        for stmt in scope.statements:
            defined: list[tuple[str, ast.Pos]] = []
            if isinstance(stmt, ast.FlowDef):
                defined.append((stmt.name, stmt.pos))
            if stmt.pipe.split is not None:
                defined.extend(stmt.pipe.split.flows)
            for name, pos in defined:
                if name in scope.flows:
                    first = scope.flows[name][1]
                    self.error(_err(AmmlNameError, f"flow `{name}` is defined twice (first at line {first.line})",
                                    pos, "give each flow its own name"))
                elif name in self.registry:
                    self.error(_err(AmmlNameError, f"flow `{name}` has the name of a component", pos,
                                    "choose another name for the flow"))
                else:
                    scope.flows[name] = (stmt, pos)

    def _order_statements(self, scope: _Scope) -> list[ast.Statement]:
        """Statements in dependency order (flows may be used before the line that defines them)."""
        deps: dict[int, list[int]] = {}
        index = {id(s): i for i, s in enumerate(scope.statements)}
        for i, stmt in enumerate(scope.statements):
            deps[i] = [index[id(scope.flows[n][0])] for n in self._flow_reads(scope, stmt) if n in scope.flows]
        cycle = _find_cycle({str(k): [str(v) for v in vs] for k, vs in deps.items()})
        if cycle:
            names = [self._stmt_name(scope.statements[int(i)]) for i in cycle]
            stmt = scope.statements[int(cycle[0])]
            raise _err(AmmlFlowError, "flows feed each other in a cycle: " + " → ".join(names), stmt.pos,
                       "a flow cannot read its own output; break the loop")
        return [scope.statements[i] for i in _post_order(deps)]

    @staticmethod
    def _stmt_name(stmt: ast.Statement) -> str:
        if isinstance(stmt, ast.FlowDef):
            return stmt.name
        if stmt.pipe.split is not None:
            return ",".join(n for n, _ in stmt.pipe.split.flows)
        return "(pipe)"

    def _flow_reads(self, scope: _Scope, stmt: ast.Statement) -> list[str]:
        head = stmt.pipe.head
        if isinstance(head, ast.Join):
            return [n for n, _ in head.flows]
        if not head.params and head.name in scope.flows:
            return [head.name]
        return []

    def _ends_in_egress(self, stmt: ast.Statement, name: str) -> bool:
        last = stmt.pipe.steps[-1] if stmt.pipe.steps else stmt.pipe.head
        if stmt.pipe.split is not None or not isinstance(last, ast.Step):
            return False
        spec = self.registry.get(last.name)
        return spec is not None and spec.kind is Kind.EGRESS

    # ---- statements -------------------------------------------------------------------------------

    def _statement(self, scope: _Scope, stmt: ast.Statement, em: _Emitter, used: set[str]) -> None:
        pipe = stmt.pipe
        em.wf("WF_NEW_FLOW", None, pipe.pos)
        last_kind = self._head(scope, pipe.head, em, used)
        for stage in pipe.steps:
            if stage.name in scope.flows and not stage.params:
                self.error(_err(AmmlFlowError, f"flow `{stage.name}` cannot be read in the middle of a pipe",
                                stage.pos, f"start a pipe with it, or merge flows with `join {stage.name}, ...`"))
                continue
            spec = self._spec(stage, scope)
            if spec is None:
                continue
            if last_kind is Kind.EGRESS:
                self.error(_err(AmmlFlowError, "an egress must be the last component of a pipe; "
                                f"`{stage.name}` follows one", stage.pos,
                                "name the flow before the egress and read it twice to send records two ways"))
            if spec.kind is Kind.INGRESS:
                self.error(_err(AmmlFlowError, f"`{stage.name}` is an ingress (a source) and cannot follow `|`",
                                stage.pos, "start a new pipe with it, and merge pipes with `join`"))
            self._component(stage, spec, em, scope)
            last_kind = spec.kind
        if pipe.split is not None:
            if last_kind is Kind.EGRESS:
                self.error(_err(AmmlFlowError, "an egress has no output to split", pipe.split.pos,
                                "split before the egress"))
            em.wf("WF_SPLIT", ",".join(n for n, _ in pipe.split.flows), pipe.split.pos)
        if isinstance(stmt, ast.FlowDef):
            if last_kind is Kind.EGRESS and stmt.name in used | self._all_reads(scope):
                self.error(_err(AmmlFlowError, f"flow `{stmt.name}` ends in an egress, so it has no records to "
                                "read", stmt.pos, "name the flow before its egress"))
            em.wf("WF_ASSIGN", stmt.name, stmt.pos)

    def _all_reads(self, scope: _Scope) -> set[str]:
        return {n for s in scope.statements for n in self._flow_reads(scope, s)}

    def _head(self, scope: _Scope, head: ast.Step | ast.Join, em: _Emitter, used: set[str]) -> Kind | None:
        if isinstance(head, ast.Join):
            for name, pos in head.flows:
                self._need_flow(scope, name, pos)
                used.add(name)
            if len(head.flows) < 2:
                self.error(_err(AmmlFlowError, "`join` needs at least two flows", head.pos))
            em.wf("WF_JOIN", ",".join(n for n, _ in head.flows), head.pos)
            return Kind.PROGRESS
        if not head.params and head.name in scope.flows:
            used.add(head.name)
            em.wf("WF_LOAD_FLOW", head.name, head.pos)
            return Kind.PROGRESS
        spec = self._spec(head, scope)
        if spec is None:
            return None
        if spec.kind is not Kind.INGRESS:
            self.error(_err(AmmlFlowError, f"`{head.name}` needs input and cannot start a pipe", head.pos,
                            "start with a source (`source`, `normalsource`, `logsource`), a named flow, or `join`"))
        self._component(head, spec, em, scope)
        return spec.kind

    def _need_flow(self, scope: _Scope, name: str, pos: ast.Pos) -> None:
        if name not in scope.flows:
            known = list(scope.flows)
            self.error(_err(AmmlNameError, f"flow `{name}` is used but never defined", pos,
                            did_you_mean(name, known) or (f"flows here: {one_of(known)}" if known else
                                                          f"define it first: `{name} = source ...`")))

    def _spec(self, stage: ast.Step, scope: _Scope) -> ComponentSpec | None:
        spec = self.registry.get(stage.name)
        if spec is None:
            candidates = [*self.registry, *scope.flows]
            self.error(_err(AmmlNameError, f"unknown component `{stage.name}`", stage.pos,
                            did_you_mean(stage.name, candidates)
                            or f"components: {one_of(self.registry, 40)}"))
        return spec

    # ---- components and parameters ----------------------------------------------------------------

    def _loop_value(self, scope: _Scope, stage: ast.Step, pspec: ParamSpec, p: ast.Param) -> ast.Expr:
        """A parameter value that is exactly the loop variable (`source id=series`) means the item: a run
        parameter of that name, which the run binds to the item (``airflow_amml.run.item_params``). In a
        per-record expression a bare name stays a record column, and the loop variable there is refused."""
        loop = scope.foreach
        if loop is None:
            return p.value
        var = loop.variable
        if pspec.type.per_record:
            fields, _ = reads(p.value)
            if var in fields:
                raise _err(AmmlNameError, f"`{var}` in `{pspec.name}=` of `{stage.name}` is a record column here, "
                           f"not the loop variable: an expression reads the item nowhere", _field_pos(p.value, var),
                           f"pass the item as a whole parameter value (`source id={var}`); to filter by it, declare "
                           f"a run parameter and compare with `params.NAME`, or filter by another column")
            return p.value
        if isinstance(p.value, ast.Field) and p.value.name == var:
            scope.loop_used = True
            self._check_items_fit(scope, stage, pspec, p)
            return ast.ParamRef(p.value.pos, var)
        return p.value

    def _check_items_fit(self, scope: _Scope, stage: ast.Step, pspec: ParamSpec, p: ast.Param) -> None:
        """Each item known now must be a value the parameter takes (`count=n` over ["a"] would fail every
        run); catalog ids are always strings."""
        loop = scope.foreach
        assert loop is not None
        where = f"parameter `{pspec.name}` of `{stage.name}` (the item `{loop.variable}`)"
        if loop.kind == "catalog" and pspec.type not in (ParamType.STR, ParamType.STR_LIST, ParamType.ANY):
            raise _err(AmmlTypeError, f"{where} must be {pspec.type.value}; catalog ids are strings", p.value.pos,
                       f"pass the item to a text parameter, e.g. `source id={loop.variable}`")
        for item in scope.known_items:
            _check_value_type(where, pspec, ast.Const(p.value.pos, item))

    def _component(self, stage: ast.Step, spec: ComponentSpec, em: _Emitter, scope: _Scope) -> None:
        if len(stage.params) > MAX_PARAMS_PER_COMPONENT:
            self.error(_err(AmmlLimitError, f"`{stage.name}` has more than {MAX_PARAMS_PER_COMPONENT} parameters",
                            stage.params[MAX_PARAMS_PER_COMPONENT].pos,
                            f"split it into several `{stage.name}` components, one after the other"))
            return
        em.wf("WF_MAKE_COMPONENT", stage.name, stage.pos)
        assignments: list[tuple[str, ast.Expr]] = []
        seen: dict[str, ast.Pos] = {}
        for p in stage.params:
            if p.name in seen:
                self.error(_err(AmmlNameError, f"parameter `{p.name}` is given twice", p.pos))
                continue
            seen[p.name] = p.pos
            pspec = spec.param(p.name)
            if pspec is None:
                names = [x.name for x in spec.params]
                self.error(_err(AmmlNameError, f"`{stage.name}` has no parameter `{p.name}`", p.pos,
                                did_you_mean(p.name, names) or f"its parameters: {one_of(names)}"))
                continue
            try:
                value = self._loop_value(scope, stage, pspec, p)
                value = fold(value)
                self._check_param(stage, pspec, p, value)
            except SourceError as exc:
                self.error(exc)
                continue
            assignments.append((p.name, value))
        for pspec in spec.params:
            if pspec.required and pspec.name not in seen:
                self.error(_err(AmmlTypeError, f"`{stage.name}` needs the parameter `{pspec.name}` "
                                f"({pspec.type.value}: {pspec.doc})", stage.pos,
                                f"add `{pspec.name}=...` after `{stage.name}`"))
        if assignments:
            em.callback(compile_callback(assignments), stage.pos)
        em.wf("WF_ADD_COMPONENT", None, stage.pos)

    def _check_param(self, stage: ast.Step, pspec: ParamSpec, p: ast.Param, value: ast.Expr) -> None:
        fields, params = reads(value)
        loop_param = isinstance(value, ast.ParamRef) and isinstance(p.value, ast.Field)  # the item (_loop_value)
        for name in params:
            if self.declared_params is not None and name not in self.declared_params and not loop_param:
                self.error(_err(AmmlNameError, f"run parameter `params.{name}` is not declared in the dag block",
                                p.value.pos, did_you_mean(name, self.declared_params)
                                or f"declare it: params = {{{name}: <default>}}"))
        if pspec.type.per_record:
            return
        where = f"parameter `{pspec.name}` of `{stage.name}`"
        if fields:
            hint = None
            if isinstance(value, ast.Field) and pspec.type in (ParamType.STR, ParamType.STR_LIST, ParamType.ANY):
                hint = f"to pass the text, quote it: {pspec.name}='{value.name}'"
            raise _err(AmmlTypeError, f"{where} must be a constant {pspec.type.value}; this expression reads the "
                       f"record field `{sorted(fields)[0]}`", p.value.pos, hint)
        if not isinstance(value, ast.Const):
            return  # reads run parameters: checked when the run starts
        _check_value_type(where, pspec, value)


def _with_items_upstream(block: ast.PipelineBlock) -> tuple[tuple[str, ast.Pos], ...]:
    """`after` of a block, with the upstream pipeline of `for VAR in PIPELINE.COLUMN` (it runs after it)."""
    loop = block.foreach
    if loop is None or loop.kind != "pipeline" or loop.value[0] in {n for n, _ in block.after}:
        return block.after
    return (*block.after, (loop.value[0], loop.items_pos))


def _items_sinks(scope: _Scope) -> list[tuple[str | None, ast.Pos]]:
    """(column, position) of each `items` sink in a pipeline; column None when it is not a constant string."""
    sinks = []
    for stmt in scope.statements:
        for stage in (stmt.pipe.head, *stmt.pipe.steps):
            if isinstance(stage, ast.Step) and stage.name == "items":
                column = next((p.value for p in stage.params if p.name == "column"), None)
                text = column.value if isinstance(column, ast.Const) and isinstance(column.value, str) else None
                sinks.append((text, stage.pos))
    return sinks


def _field_pos(expr: ast.Expr, name: str) -> ast.Pos:
    """Where ``expr`` first reads the field ``name`` (a loop, as the parser's depth check: no recursion)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Field) and node.name == name:
            return node.pos
        stack.extend(reversed(ast.children(node)))
    return expr.pos


def _is_item(value: Any) -> bool:
    """An item is a string or a number (what a task's map index can show and a sink column can hold)."""
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _check_value_type(where: str, pspec: ParamSpec, value: ast.Const) -> None:
    v = value.value
    if v is None and (not pspec.required and pspec.default is None):
        return
    ok = {
        ParamType.INT: isinstance(v, int) and not isinstance(v, bool),
        ParamType.FLOAT: isinstance(v, (int, float)) and not isinstance(v, bool),
        ParamType.STR: isinstance(v, str),
        ParamType.BOOL: isinstance(v, bool),
        ParamType.STR_LIST: isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
        ParamType.FLOAT_LIST: isinstance(v, list)
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v),
        ParamType.ANY: True,
    }[pspec.type]
    if not ok:
        from .semantics import type_name

        example = {"int": "20", "float": "0.5", "str": "'text'", "bool": "true", "list[str]": "['a', 'b']",
                   "list[float]": "[0.1, 0.2]"}.get(pspec.type.value, "")
        raise _err(AmmlTypeError, f"{where} must be {pspec.type.value}; got {type_name(v)} {_short(v)}", value.pos,
                   f"for example {pspec.name}={example}" if example else None)
    values = v if isinstance(v, list) else [v]
    if pspec.choices:
        for item in values:
            if item not in pspec.choices:
                raise _err(AmmlTypeError, f"{where} must be one of {one_of(pspec.choices)}; got {_short(item)}",
                           value.pos, did_you_mean(str(item)[:100], pspec.choices))
    problem = pspec.check(v) if pspec.check is not None and v is not None else None
    if problem is not None:  # what the run would refuse, said now
        raise _err(AmmlTypeError, f"{where}: {problem[0]}; got {_short(v)}", value.pos, problem[1])


def _short(value: Any, limit: int = 60) -> str:
    """A value for a message: its repr, cut (a 64K-character string constant must not fill the screen)."""
    text = repr(value[:limit + 1] if isinstance(value, str) else value)
    return text if len(text) <= limit else text[:limit] + "…"


class _Emitter:
    def __init__(self) -> None:
        self.code: list[bc.WfInstr] = []
        self.callbacks: list[bc.Code] = []

    def wf(self, op: str, arg: Any, pos: ast.Pos) -> None:
        self.code.append(bc.WfInstr(op, arg, pos.line, pos.column))

    def callback(self, code: bc.Code, pos: ast.Pos) -> None:
        self.wf("WF_DEF_CALLBACK", len(self.callbacks), pos)
        self.callbacks.append(code)
        self.wf("WF_ADD_CALLBACK", None, pos)


_DONE = object()


def _post_order(deps: dict[int, list[int]]) -> list[int]:
    """Every node after the nodes it depends on (depth first, in key order). A loop with its own stack, not
    recursion: a chain of flows may be as long as a pipeline allows."""
    ordered: list[int] = []
    done: set[int] = set()
    for root in deps:
        if root in done:
            continue
        done.add(root)
        stack = [(root, iter(deps[root]))]
        while stack:
            node, pending = stack[-1]
            nxt = next(pending, _DONE)
            if nxt is _DONE:
                stack.pop()
                ordered.append(node)
            elif nxt not in done:
                done.add(nxt)
                stack.append((nxt, iter(deps[nxt])))
    return ordered


def _find_cycle(deps: dict[str, list[str]]) -> list[str] | None:
    """A cycle in a dependency graph as a list of nodes (first repeated at the end), or None. Depth first
    with an explicit stack, as in :func:`_post_order`."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for root in deps:
        if root in state:
            continue
        state[root] = 1
        path, pending = [root], [iter(deps.get(root, ()))]
        while path:
            nxt = next(pending[-1], _DONE)
            if nxt is _DONE:
                state[path.pop()] = 2
                pending.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                pending.append(iter(deps.get(nxt, ())))
    return None


# A task instance is named `VAR=item` (Airflow keeps it in a VARCHAR(250); an item has at most 200 characters).
MAX_LOOP_VARIABLE = 40


def _first_repeated(items: list) -> object | None:
    """The first item whose text an earlier one has (`1` and `"1"` name the same task instance and rows)."""
    seen: set[str] = set()
    for item in items:
        if str(item) in seen:
            return item
        seen.add(str(item))
    return None
