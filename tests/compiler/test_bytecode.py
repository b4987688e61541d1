"""Bytecode: the Fig. 5 listing, a stable serialised form, and the content-hash cache."""

import json

import pytest

from compiler import ProgramCache, compile_source, disassemble
from compiler import bytecode as bc
from compiler.bytecode import Program
from compiler.cache import cache_key

FIG5 = "normalsource col='val1', mean=0, std=1 |\nfilter cond=val1 > 1 | print"


def test_listing_reads_like_fig5():
    listing = disassemble(compile_source(FIG5, "fig5.amml", cache=ProgramCache()))
    lines = [line.strip() for line in listing.splitlines()]
    filter_at = lines.index("WF_MAKE_COMPONENT filter  ; line 2")
    block = lines[filter_at : filter_at + 14]
    assert block[1:5] == ["WF_DEF_CALLBACK 1", "CONST_DEF_START", "0 1 i1", "CONST_DEF_END"]
    ops = [line.split()[1] for line in block[6:10]]
    assert ops == ["LOAD_VALUE", "LOAD_CONST", "CMP_GT", "ASSIGN"]
    assert "0 4 sval1" in lines
    assert lines[-3:] == ["WF_MAKE_COMPONENT print  ; line 2", "WF_ADD_COMPONENT", "WF_END"]


def test_short_circuit_jumps_past_the_right_operand():
    program = compile_source("normalsource | filter cond=a > 1 and b < 2 | print", cache=ProgramCache())
    code = program.pipelines[0].callbacks[0]
    names = [i.opname for i in code.instructions]
    assert names == [
        "LOAD_VALUE",
        "LOAD_CONST",
        "CMP_GT",
        "JUMP_IF_FALSE",
        "LOAD_VALUE",
        "LOAD_CONST",
        "CMP_LT",
        "AND",
        "ASSIGN",
    ]
    assert code.instructions[3].arg == 8, "jumps to the ASSIGN, skipping `b < 2`"


def test_serialised_form_is_stable_and_round_trips():
    first = compile_source(FIG5, "f.amml", cache=ProgramCache()).to_json()
    second = compile_source(FIG5, "f.amml", cache=ProgramCache()).to_json()
    assert first == second
    assert Program.from_json(first).to_json() == first
    assert json.loads(first)["format"] == 1


def test_cache_hits_by_content_and_misses_on_any_change(tmp_path):
    cache = ProgramCache(tmp_path)
    program = compile_source(FIG5, "f.amml", cache=cache)
    assert len(list(tmp_path.glob("*.json"))) == 1
    reread = ProgramCache(tmp_path)  # a new process: only the disk copy exists
    assert compile_source(FIG5, "f.amml", cache=reread) == program
    assert compile_source(FIG5 + " ", "f.amml", cache=reread) != program
    assert cache_key(FIG5, "f.amml", "r1") != cache_key(FIG5, "f.amml", "r2")


def test_corrupt_cache_entry_is_ignored(tmp_path):
    cache = ProgramCache(tmp_path)
    program = compile_source(FIG5, "f.amml", cache=cache)
    for path in tmp_path.glob("*.json"):
        path.write_text("{not json")
    assert compile_source(FIG5, "f.amml", cache=ProgramCache(tmp_path)) == program


def test_the_disk_cache_hits_in_a_new_process(tmp_path):
    """The DAG processor parses in fresh processes: the cache key must not depend on the process."""
    import subprocess
    import sys
    from pathlib import Path

    source = tmp_path / "f.amml"
    source.write_text(FIG5)
    code = (
        "import sys; from compiler import ProgramCache, compile_file\n"
        f"cache = ProgramCache({str(tmp_path / 'cache')!r}); compile_file({str(source)!r}, cache=cache)\n"
        "print(sorted(cache.used))\n"
    )
    root = Path(__file__).resolve().parents[2]
    runs = [
        subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
        for _ in range(2)
    ]
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1


def test_prune_forgets_entries_no_parse_uses(tmp_path):
    import os
    import time

    cache = ProgramCache(tmp_path)
    compile_source(FIG5, "a.amml", cache=cache)
    old = ProgramCache(tmp_path)
    compile_source(FIG5 + "\n", "a.amml", cache=old)  # the file was edited since
    stale = [p for p in tmp_path.glob("*.json") if p.stem not in cache.used]
    long_ago = time.time() - 2 * 86400
    os.utime(stale[0], (long_ago, long_ago))
    assert cache.prune(keep=cache.used) == 1
    assert {p.stem for p in tmp_path.glob("*.json")} == cache.used


# The opcode table of each format version, as dis pins CPython's magic number: a serialised (cached) program
# stores opcode numbers, so changing the table means a new FORMAT_VERSION (and a new entry here), never an edit.
OPCODE_TABLES = {
    1: {
        "LOAD_CONST": (0, ("const",)), "LOAD_VALUE": (1, ("name",)), "LOAD_PARAM": (2, ("name",)),
        "ASSIGN": (3, ("name",)), "ADD": (4, ()), "SUB": (5, ()), "MUL": (6, ()), "DIV": (7, ()), "MOD": (8, ()),
        "POW": (9, ()), "NEG": (10, ()), "POS": (11, ()), "NOT": (12, ()), "CMP_EQ": (13, ()), "CMP_NE": (14, ()),
        "CMP_LT": (15, ()), "CMP_LE": (16, ()), "CMP_GT": (17, ()), "CMP_GE": (18, ()),
        "JUMP_IF_FALSE": (19, ("jump",)), "JUMP_IF_TRUE": (20, ("jump",)), "AND": (21, ()), "OR": (22, ()),
        "CALL": (23, ("name", "argc")), "CALL_METHOD": (24, ("name", "argc")),
    },
}
WORKFLOW_OPS = {  # stored by name: renaming or removing one changes the format too
    1: ("WF_NEW_FLOW", "WF_MAKE_COMPONENT", "WF_DEF_CALLBACK", "WF_ADD_CALLBACK", "WF_ADD_COMPONENT",
        "WF_LOAD_FLOW", "WF_JOIN", "WF_SPLIT", "WF_ASSIGN", "WF_END"),
}


def test_opcode_table_changes_only_with_a_format_version_bump():
    flags = {"const": bc.HAS_CONST, "name": bc.HAS_NAME, "jump": bc.HAS_JUMP, "argc": bc.HAS_ARGC}
    table = {
        name: (code, tuple(flag for flag, members in flags.items() if code in members))
        for name, code in bc.OPCODES.items()
    }
    hint = "bump FORMAT_VERSION in compiler/bytecode.py and add the new table here"
    assert bc.FORMAT_VERSION in OPCODE_TABLES, f"no pinned opcode table for format {bc.FORMAT_VERSION}; {hint}"
    assert table == OPCODE_TABLES[bc.FORMAT_VERSION], f"the opcode table changed; {hint}"
    assert bc.WF_OPS == WORKFLOW_OPS[bc.FORMAT_VERSION], f"the workflow opcodes changed; {hint}"
    assert all(getattr(bc, name) == code for name, code in bc.OPCODES.items())
    assert {bc.OPCODES[name]: name for name in bc.OPCODES} == bc.OPNAMES


def test_an_opcode_number_is_defined_once():
    with pytest.raises(ValueError, match="clashes"):
        bc._def_op("NEW_OP", bc.ADD)
