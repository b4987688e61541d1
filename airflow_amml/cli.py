"""`amml`: the command line.

    amml lint PATH...                      check .amml pipelines, .yaml model files and folders of both
    amml compile FILE --emit bytecode|ast|graph|json [--format text|mermaid|dot] [--pipeline NAME]
    amml components [NAME]                 the components the compiler knows, with their parameters
    amml run FILE [--pipeline NAME] [--mode multiprocess|single] [--param KEY=VALUE] [--parallel N]
    amml model list|show|register|alias|aliases|gc  the model registry
    amml evaluate FILE --data DIR --labels WINDOWS.json [--out DIR] [--json]   a detector scored on labelled series
    amml alerts list|show ID [--csv FILE]  the alerts pipelines recorded, and the records saved around each

No Airflow, database or HDFS is needed for any of these (with `AMML_REGISTRY_CONN_ID`/`AMML_ARTIFACT_CONN_ID`
set, Airflow resolves those connections, as in the tasks).

Exit status: 0 success; 1 an error in the input (every error is printed as file:line:column and a hint, never
a traceback: set ``AMML_DEBUG=1`` to see one for an unexpected failure); 2 a usage error (a bad option or
``--param``); 128 + N when stopped by signal N (143 for SIGTERM, 130 for Ctrl-C), after every component
process has been stopped.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_amml.runtime.errors import Terminated
from compiler import AmmlCompileErrors, AmmlError, build_graph, compile_file, default_registry, disassemble

if TYPE_CHECKING:
    from airflow_amml.run_config import RunConfig

MODEL_SUFFIXES = (".yaml", ".yml")


class _UsageError(Exception):
    """A command line that cannot mean anything (exit 2, like argparse's own usage errors)."""


def _lint_targets(paths: Sequence[str]) -> tuple[list[Path], list[Path], list[str]]:
    """(.amml files, model files, problems) named by the arguments: a folder gives both kinds."""
    amml: list[Path] = []
    models: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            amml.extend(sorted(p for p in path.rglob("*.amml") if p.is_file()))
        elif path.suffix == ".amml":
            amml.append(path)  # a missing or unreadable one is reported by the compiler, with its name
        elif path.suffix in MODEL_SUFFIXES:
            models.append(path)
        elif not path.exists():
            problems.append(f"{raw}: no such file or folder")
        else:
            problems.append(
                f"{raw}: not an .amml pipeline, a .yaml/.yml model file or a folder; amml lint checks only those"
            )
    return amml, models, problems


def cmd_lint(args: argparse.Namespace) -> int:
    files, named_models, unusable = _lint_targets(args.paths)
    files = _each_once(files)  # a folder and a file in it, both named
    model_files = list(dict.fromkeys([*named_models, *_model_files(args.paths, files, named_models)]))
    for problem in unusable:
        print(f"amml lint: {problem}", file=sys.stderr)
    if not files and not model_files:
        if not unusable:
            print(f"amml lint: no .amml or model files in {' '.join(args.paths)}", file=sys.stderr)
        return 1
    failed = errors = len(unusable)
    definitions: set[str] = set()
    for path in model_files:
        from airflow_amml.models.spec import load_model_spec

        try:
            definitions.add(load_model_spec(path).ref)
        except AmmlError as exc:
            failed, errors = failed + 1, errors + _count(exc)
            print(exc, end="\n\n", file=sys.stderr)
    compiled: dict[Path, Any] = {}
    for path in files:
        try:
            compiled[path] = compile_file(path)
        except AmmlError as exc:
            compiled[path] = exc
    duplicates = _duplicate_dag_ids({p: c for p, c in compiled.items() if not isinstance(c, AmmlError)})
    for path, result in compiled.items():
        problems = [result] if isinstance(result, AmmlError) else _undefined_models(result, definitions)
        problems += duplicates.get(path, [])  # the loader would make each of them an error DAG
        if problems:
            failed += 1
            errors += sum(_count(p) for p in problems)
            for problem in problems:
                print(problem, end="\n\n", file=sys.stderr)
    total = len(files) + len(model_files) + len(unusable)
    summary = f"{total} file(s) checked: {total - failed} ok, {failed} with errors ({errors} error(s))"
    print(summary, file=sys.stderr if failed else sys.stdout)
    return 1 if failed else 0


def _duplicate_dag_ids(programs: dict[Path, Any]) -> dict[Path, list[AmmlError]]:
    """An error for each file whose DAG id another of the checked files declares too."""
    from compiler.dag_block import dag_id_for, duplicate_dag_ids
    from compiler.errors import AmmlNameError

    ids = {str(path): dag_id_for(program.dag_name, path.name) for path, program in programs.items()}
    return {
        Path(file): [
            AmmlNameError(
                f"the DAG id `{ids[file]}` is also declared by {', '.join(others)}",
                filename=file,
                hint="give each file its own `dag NAME`: in Airflow, none of these files would get a DAG",
            )
        ]
        for file, others in duplicate_dag_ids(ids).items()
    }


def _count(exc: AmmlError) -> int:
    return len(exc.errors) if isinstance(exc, AmmlCompileErrors) else 1


def _model_files(paths: Sequence[str], amml_files: list[Path], named: list[Path]) -> list[Path]:
    """Model definitions to check: YAML model files in the given folders, and next to the given .amml files
    (each file once, however it is reached; those named on the command line keep the name given)."""
    from airflow_amml.models.spec import find_model_files

    folders = {Path(p) for p in paths if Path(p).is_dir()} | {f.parent / "models" for f in amml_files}
    seen = {_resolved(p) for p in named}
    found: list[Path] = []
    for folder in sorted(folders):
        for path in find_model_files(folder):
            if _resolved(path) not in seen:
                seen.add(_resolved(path))
                found.append(path.resolve())
    return found


def _each_once(paths: list[Path]) -> list[Path]:
    seen: set[Path] = set()
    out = []
    for path in paths:
        if _resolved(path) not in seen:
            seen.add(_resolved(path))
            out.append(path)
    return out


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:  # a symlink loop: the path itself names it
        return path


def _undefined_models(program: object, definitions: set[str]) -> list[AmmlError]:
    """`train_lstm model="name:version"` must name a definition among the checked model files."""
    from compiler.errors import AmmlNameError, did_you_mean, one_of

    params = (program.dag or {}).get("params", {})
    problems: list[AmmlError] = []
    for pipeline in program.pipelines:
        for node in build_graph(pipeline).nodes:
            if node.component != "train_lstm" or node.callback is None:
                continue
            ref = node.callback.static_values.get("model")
            if ref is None and "model" in node.callback.params:  # model=params.NAME: check the default
                ref = params.get(node.callback.params[node.callback.params.index("model")])
            if isinstance(ref, str) and ref not in definitions:
                problems.append(
                    AmmlNameError(
                        f"`train_lstm` uses the model definition {ref!r}, which no model file defines; "
                        f"defined: {one_of(definitions)}",
                        filename=program.filename,
                        line=node.line,
                        column=node.column,
                        source=program.source,
                        hint=did_you_mean(ref, definitions) or "add a model YAML under models/ next to this file",
                    )
                )
    return problems


def cmd_compile(args: argparse.Namespace) -> int:
    if args.emit == "ast":
        from compiler import parse_source
        from compiler.errors import read_text

        for item in parse_source(read_text(args.file), args.file).items:
            print(item)
        return 0
    program = compile_file(args.file)
    pipelines = [program.pipeline(args.pipeline)] if args.pipeline else list(program.pipelines)
    if args.emit == "bytecode":
        from compiler.bytecode import disassemble_pipeline

        print("\n\n".join(disassemble_pipeline(p) for p in pipelines) if args.pipeline else disassemble(program))
    elif args.emit == "json":
        print(program.to_json())
    else:
        from compiler.workflow import RENDERERS

        print("\n\n".join(RENDERERS[args.format](build_graph(p)) for p in pipelines))
    return 0


def cmd_components(args: argparse.Namespace) -> int:
    registry = default_registry()
    names = [args.name] if args.name else sorted(registry)
    for name in names:
        if name not in registry:
            from compiler.errors import did_you_mean

            print(f"amml: unknown component `{name}`; {did_you_mean(name, registry) or ''}", file=sys.stderr)
            return 1
        spec = registry[name]
        print(f"{spec.name} ({spec.kind.value}): {spec.doc}")
        for p in spec.params:
            default = "required" if p.required else f"default {p.default!r}"
            choices = f", one of {', '.join(p.choices)}" if p.choices else ""
            print(f"    {p.name}: {p.type.value} ({default}{choices}) — {p.doc}")
        if spec.extra is not None:
            print(f"    <any name>: {spec.extra.value} — {spec.extra_doc}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from airflow_amml.detection.evaluate import cmd_evaluate as evaluate

    folder = Path(args.file).resolve().parent
    return evaluate(args, _run_config(model_paths=(folder / "models", folder)))


def cmd_run(args: argparse.Namespace) -> int:
    import logging

    from airflow_amml.run import run_file

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    program = compile_file(args.file)
    # a dag block declares every run parameter (the compiler refuses `params.X` it does not declare)
    declared = dict(program.dag.get("params", {})) if program.dag is not None else None
    run_params = _run_params(args.param or (), declared)
    folder = Path(args.file).resolve().parent
    flags = {"batch_rows": args.batch_rows, "flush_delay": args.flush_delay}
    config = _run_config(
        model_paths=(folder / "models", folder), **{name: value for name, value in flags.items() if value is not None}
    )
    # the executor logs each pipeline's per-component summary; a fanned-out pipeline runs once per item
    failed = run_file(
        program,
        pipelines=args.pipeline or None,
        params=run_params,
        config=config,
        mode=args.mode,
        filename=str(args.file),
        parallel=args.parallel,
    )
    return 1 if failed else 0


def _run_config(**overrides: Any) -> RunConfig:
    """The environment's configuration. On a machine with Airflow, `AMML_REGISTRY_CONN_ID` and
    `AMML_ARTIFACT_CONN_ID` name the connections the tasks use (`docker compose exec worker amml model list`):
    only then is Airflow imported, to resolve them."""
    from airflow_amml.run_config import CONNECTION_VARIABLES, RunConfig

    if any(os.environ.get(variable) for variable in CONNECTION_VARIABLES):
        from operators.connections import connection_overrides

        overrides = {**connection_overrides(os.environ), **overrides}
    return RunConfig.from_environment(os.environ, **overrides)


_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _run_params(items: Sequence[str], declared: dict[str, Any] | None) -> dict[str, Any]:
    """`--param KEY=VALUE` options, typed like the dag block's defaults (checked here, not deep in a run)."""
    from compiler.errors import did_you_mean, one_of

    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not _PARAM_NAME.match(key):
            raise _UsageError(f"--param {item!r}: expected KEY=VALUE such as --param epochs=5")
        if declared is not None and key not in declared:
            hint = did_you_mean(key, declared)
            raise _UsageError(
                f"--param {key}: the file's dag block declares no parameter `{key}`; it declares "
                f"{one_of(declared)}" + (f"; {hint}" if hint else "")
            )
        params[key] = _typed_param(key, raw, (declared or {}).get(key))
    return params


def _typed_param(key: str, raw: str, default: Any) -> Any:
    """The value of `--param key=raw`: text for a text parameter, else JSON of the default's type."""
    import json

    if isinstance(default, str):
        return raw
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    kinds = [(bool, "true or false"), (int, "an integer"), (float, "a number"), (list, "a JSON list"),
             (dict, "a JSON object")]  # fmt: skip
    for cls, noun in kinds:
        if isinstance(default, cls):
            ok = isinstance(value, cls) and not (cls is not bool and isinstance(value, bool))
            if cls is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok:
                raise _UsageError(f"--param {key}={raw}: expected {noun} (the default is {json.dumps(default)})")
            return float(value) if cls is float else value
    if isinstance(value, float) and not math.isfinite(value):
        raise _UsageError(f"--param {key}={raw}: expected a finite number")
    return value


def _registry():
    from airflow_amml.registry import ModelRegistry

    return ModelRegistry.from_config(_run_config())


def cmd_model(args: argparse.Namespace) -> int:
    return MODEL_COMMANDS[args.model_command](args)


def _model_list(args: argparse.Namespace) -> int:
    registry = _registry()
    versions = registry.list_versions(args.name)
    if not versions and not args.name:
        for name, version, digest in registry.list_definitions():
            print(f"definition {name}:{version}  sha256 {digest[:12]}")
    for v in versions:
        aliases = " ".join("@" + a for a in v.aliases)
        metrics = " ".join(f"{k}={val:.4g}" if isinstance(val, float) else f"{k}={val}" for k, val in v.metrics.items())
        print(f"{v.ref:<20} {v.definition:<14} {v.created_at:%Y-%m-%d %H:%M}  {aliases:<14} {metrics}")
    return 0


def _model_show(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    entry = _registry().resolve(args.ref)
    data = dataclasses.asdict(entry)
    data["created_at"] = entry.created_at.isoformat()
    print(json.dumps(data, indent=2, default=str))
    return 0


def _model_register(args: argparse.Namespace) -> int:
    if args.file.endswith(MODEL_SUFFIXES):
        from airflow_amml.models.spec import load_model_spec

        spec = load_model_spec(args.file)  # checked before the registry is opened
        registry = _registry()
        print(f"registered definition {registry.register_definition(spec.name, spec.version, spec.source)}")
        return 0
    if not args.definition:
        raise _UsageError("amml model register MODEL_FILE needs --definition NAME:VERSION")
    if not Path(args.file).is_file():
        what = "is not a file" if Path(args.file).exists() else "does not exist"
        print(f"amml: {args.file}: {what}", file=sys.stderr)
        return 1
    registry = _registry()
    name = args.name or args.definition.partition(":")[0]
    entry = registry.register_version(name, args.definition, Path(args.file))
    print(f"registered {entry.ref} ({entry.artifact_uri})")
    return 0


def _model_alias(args: argparse.Namespace) -> int:
    from airflow_amml.registry import parse_ref

    name, kind, number = parse_ref(args.version)  # a malformed one is a registry error, with the pattern
    if kind != "version":
        raise _UsageError(f"expected NAME/VERSION such as ett/3, got {args.version!r}")
    _registry().set_alias(name, args.alias, number, set_by=_cli_user(), reason=args.reason)
    print(f"{name}@{args.alias} → {name}/{number}")
    return 0


def _cli_user() -> str:
    """Who moved an alias from the command line, as the alias history records it: `$USER (amml)`."""
    import getpass

    try:
        return f"{getpass.getuser()} (amml)"
    except (OSError, KeyError):  # no USER/LOGNAME and no passwd entry (a bare container)
        return "amml"


def _model_aliases(args: argparse.Namespace) -> int:
    history = _registry().alias_history(args.name, args.alias)
    for change in history:
        moved = (
            f"{change.previous_version} → {change.version}"
            if change.previous_version is not None
            else f"→ {change.version}"
        )
        reason = f"  {change.reason}" if change.reason else ""
        print(f"{change.set_at:%Y-%m-%d %H:%M:%S}  @{change.alias:<12} {moved:<10} {change.set_by or '?'}{reason}")
    if not history:
        print(f"{args.name} has no alias history")
    return 0


def _model_gc(args: argparse.Namespace) -> int:
    removed = _registry().gc(grace_seconds=args.grace, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for uri in removed:
        print(f"{verb} {uri}")
    print(f"{verb} {len(removed)} orphaned artifact(s)")
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from airflow_amml import alert_history
    from airflow_amml.run_config import RunConfig

    config = RunConfig.from_environment()
    if args.alerts_command == "list":
        return _alerts_list(alert_history.list_alerts(config, args.dag, args.item, args.limit), args.json)
    alert, records = alert_history.get_alert(config, args.id, args.table)
    return _alerts_show(alert, records, args)


def _alerts_list(rows: list[dict], as_json: bool) -> int:
    import json

    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print("no alerts", file=sys.stderr)
    for r in rows:
        when = r["record_time"] or r["created_at"]
        score = "" if r["score"] is None else f"score {r['score']:.3g}  "
        run = f"{r['dag_id']}/{r['task_id']}  {r['run_id']}  " if r["dag_id"] else ""
        item = f"item {r['item']}  " if r["item"] is not None else ""
        notify = f"notify {r['notify_status']}  " if r["notify_status"] else ""
        if r["snapshot_rows"]:  # saved with the alert (`alert snapshot=`) or by a `snapshot` component
            snapshot = f"snapshot {r['snapshot_status'] or 'saved'} ({r['snapshot_rows']} records)"
        elif r["snapshot_status"]:  # asked for, in a table of the pipeline's naming
            snapshot = f"snapshot {r['snapshot_status']} (another table: `amml alerts show {r['id']} --table NAME`)"
        else:
            snapshot = ""
        head = f"{r['id']:>6}  {when:%Y-%m-%d %H:%M}  {r['level']:<8} {r['message']}  "
        print(f"{head}{score}{run}{item}{notify}{snapshot}")
    return 0


def _alerts_show(alert: dict, records: list[dict], args: argparse.Namespace) -> int:
    import json

    import pandas as pd

    frame = pd.DataFrame.from_records(records)
    if args.csv and records:
        frame.to_csv(args.csv, index=False)
    if args.json:
        print(json.dumps({"alert": alert, "snapshot": records}, indent=2, default=str))
        return 0
    for key, value in alert.items():
        print(f"{key:<16} {json.dumps(value, default=str) if isinstance(value, dict | list) else value}")
    if records:
        print(f"\nsnapshot: {len(records)} records" + (f", written to {args.csv}" if args.csv else ""))
        print(frame.to_string(max_rows=60, index=False))
    else:
        print(
            f"\nsnapshot: no records of this alert in table {args.table}"
            + (f" (nothing written to {args.csv})" if args.csv else "")
            + "; a pipeline's `snapshot_table=` or `snapshot table=` may name another: --table NAME"
        )
    return 0


MODEL_COMMANDS = {
    "list": _model_list,
    "show": _model_show,
    "register": _model_register,
    "alias": _model_alias,
    "aliases": _model_aliases,
    "gc": _model_gc,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amml", description="AMML workflow language tools")
    sub = parser.add_subparsers(dest="command", required=True)

    lint = sub.add_parser("lint", help="check .amml pipelines and .yaml/.yml model files; exit 1 on any error")
    lint.add_argument("paths", nargs="+", help=".amml files, model files or folders")
    lint.set_defaults(func=cmd_lint)

    comp = sub.add_parser("compile", help="compile one file and show the result")
    comp.add_argument("file")
    comp.add_argument("--emit", choices=("bytecode", "ast", "graph", "json"), default="bytecode")
    comp.add_argument("--format", choices=("text", "mermaid", "dot"), default="text", help="graph format")
    comp.add_argument("--pipeline", help="only this pipeline")
    comp.set_defaults(func=cmd_compile)

    run = sub.add_parser("run", help="run a file's pipelines on embedded defaults")
    run.add_argument("file")
    run.add_argument("--pipeline", action="append", help="only this pipeline (repeat it for several)")
    run.add_argument("--mode", choices=("multiprocess", "single"), default="multiprocess")
    run.add_argument("--param", action="append", metavar="KEY=VALUE", help="run parameter (JSON value or text)")
    run.add_argument(
        "--batch-rows", type=_positive_int, help="records per micro-batch (default: the dag block's, else 65536)"
    )
    run.add_argument(
        "--parallel", type=_positive_int, default=1, metavar="N",
        help="run up to N items of a fanned-out pipeline at once, each in its own process (default 1: one after "
        "the other)",
    )
    run.add_argument(
        "--flush-delay",
        type=_seconds,
        help="seconds an ingress may hold records (default: the dag block's, else 0.05)",
    )
    run.set_defaults(func=cmd_run)

    model = sub.add_parser("model", help="the model registry: list, show, register, alias, aliases, gc")
    msub = model.add_subparsers(dest="model_command", required=True)
    mlist = msub.add_parser("list", help="registered versions (and definitions)")
    mlist.add_argument("name", nargs="?")
    mshow = msub.add_parser("show", help="one version: `ett`, `ett@champion` or `ett/3`")
    mshow.add_argument("ref")
    mreg = msub.add_parser("register", help="a model definition (.yaml) or a trained model file")
    mreg.add_argument("file")
    mreg.add_argument("--definition", help="NAME:VERSION of the definition a trained file was built from")
    mreg.add_argument("--name", help="model name (default: the definition's)")
    malias = msub.add_parser("alias", help="point an alias at a version: amml model alias champion ett/3")
    malias.add_argument("alias")
    malias.add_argument("version")
    malias.add_argument("--reason", help="why (kept in the alias history)")
    maliases = msub.add_parser("aliases", help="the alias history of a model, newest first")
    maliases.add_argument("name")
    maliases.add_argument("--alias", help="only this alias")
    mgc = msub.add_parser("gc", help="remove artifacts that no version points at")
    mgc.add_argument("--grace", type=_seconds, default=3600.0, help="only files older than this many seconds")
    mgc.add_argument("--dry-run", action="store_true")
    model.set_defaults(func=cmd_model)

    ev = sub.add_parser(
        "evaluate", help="score a detection pipeline on labelled series (NAB layout): NAB score, event F1, MTTD"
    )
    ev.add_argument("file")
    ev.add_argument("--data", required=True, help="folder of <category>/<name>.csv series (timestamp,value)")
    ev.add_argument("--labels", required=True, help='windows: {"category/name.csv": [["start", "end"], ...]}')
    ev.add_argument("--out", help="also write NAB result files OUT/<category>/<detector>_<name>.csv")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.add_argument("--score-column", default="anomaly_score", help="the records' score (default anomaly_score)")
    ev.add_argument("--flag-column", default="anomaly_flag", help="the records' flag (default anomaly_flag)")
    ev.add_argument("--threshold", type=float, default=0.5, help="fixed threshold on the score without a flag")
    ev.add_argument("--pipeline", help="the pipeline to run, when the file has several")
    ev.add_argument(
        "--mode", choices=("multiprocess", "single"), default="single", help="executor mode per series (default single)"
    )
    ev.add_argument("--detector", help="the detector's name in result files (default: from the file name)")
    ev.set_defaults(func=cmd_evaluate)

    alerts = sub.add_parser("alerts", help="the alerts pipelines recorded, and the records saved around each")
    asub = alerts.add_subparsers(dest="alerts_command", required=True)
    alist = asub.add_parser("list", help="the newest alerts first")
    alist.add_argument("--dag", help="only this DAG's alerts")
    alist.add_argument("--item", help="only this fanned-out item's alerts")
    alist.add_argument("--limit", type=_row_id, default=50, help="at most this many (default 50)")
    alist.add_argument("--json", action="store_true", help="print them as JSON")
    ashow = asub.add_parser("show", help="one alert and its snapshot's records")
    ashow.add_argument("id", type=_row_id, help="the alert's id (`amml alerts list`)")
    ashow.add_argument("--table", default="amml_snapshots", help="the alert's snapshot_table (default amml_snapshots)")
    ashow.add_argument("--csv", type=Path, help="also write the snapshot's records to this CSV file")
    ashow.add_argument("--json", action="store_true", help="print the alert and its records as JSON")
    alerts.set_defaults(func=cmd_alerts)

    comps = sub.add_parser("components", help="list components and their parameters")
    comps.add_argument("name", nargs="?")
    comps.set_defaults(func=cmd_components)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}")
    return value


def _row_id(text: str) -> int:
    """A whole number ≥ 1 that a database integer holds (an alert id, a row limit)."""
    from airflow_amml.alert_history import MAX_ID

    value = _positive_int(text)
    if value > MAX_ID:
        raise argparse.ArgumentTypeError(f"expected a whole number up to {MAX_ID}, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds ≥ 0, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every failure becomes a message and an exit status (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # a usage error exits 2 here, with argparse's message
    previous = {}
    if threading.current_thread() is threading.main_thread():  # only there can Python handle signals
        previous = {sig: signal.signal(sig, _raise_stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return args.func(args)
    except AmmlError as exc:  # includes registry errors
        print(exc, file=sys.stderr)
        return 1
    except _UsageError as exc:
        print(f"amml {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `amml compile ... | head`: the reader has what it wanted
        _silence_stdout()
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"amml: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except BaseException as exc:
        signum = _stop_signal(exc)
        if signum is not None:
            print(f"amml: stopped by {signal.Signals(signum).name}", file=sys.stderr)
            return 128 + signum
        if not isinstance(exc, Exception) or os.environ.get("AMML_DEBUG"):
            raise
        print(
            f"amml: unexpected {type(exc).__name__}: {exc} (this is a bug; AMML_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_stopped(signum: int, frame: Any) -> None:
    raise Terminated(signum)  # the executor raises the same, once its children are gone


def _stop_signal(exc: BaseException) -> int | None:
    """The signal that stopped the command: ours, Ctrl-C, or the executor's (raised once its children are gone)."""
    if isinstance(exc, KeyboardInterrupt):
        return signal.SIGINT
    if isinstance(exc, Terminated):
        return exc.signum
    return None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
