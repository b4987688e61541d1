"""Robustness: whatever text it is given, the compiler returns a Program or raises an AmmlError, quickly.

Thousands of inputs: valid programs mutated character by character and token by token, spliced together,
stuffed with pathological chunks (deep nesting, long operator chains, NUL bytes, odd unicode), random
token soup, and purely random text from hypothesis. Every input must compile to a
:class:`~compiler.bytecode.Program` or raise :class:`~compiler.errors.AmmlError` (any other exception is a
compiler bug) within ``TIME_LIMIT`` seconds of CPU time, and every error must name the file and give a sane
location.
The cases come from ``random.Random(SEED)``, so a failure is reproducible from the case number.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compiler
from compiler.bytecode import Program
from compiler.errors import AmmlCompileErrors, AmmlError

# Python warns about escapes such as '\q' or '\777' in AMML strings (they are parsed with ast.literal_eval).
pytestmark = pytest.mark.filterwarnings("ignore:invalid .*escape sequence:DeprecationWarning")

FILENAME = "fuzz.amml"
# Seconds per input, compiling and rendering the error included. The limit is on CPU time, which other
# processes on a busy machine cannot inflate; the generous wall-clock limit catches waiting of any kind.
TIME_LIMIT = 2.0
WALL_TIME_LIMIT = 20.0
SEED = 1234
MAX_CONTEXT = 300  # characters of source an error may show: an excerpt around the caret, not a whole long line

CORPUS = [
    "normalsource col='val1', mean=0, std=1 | filter cond=val1 > 1 | print",
    'source id="ett" | minmax_scaler | train_lstm model="ett:0.1", epoch=20 | print',
    "a = normalsource col='v'\nb = normalsource col='v'\njoin a, b | stats cols=['v'] | print",
    'pipeline q {\n    raw = source id="ett" | select cols=["date", "OT"]\n'
    '    raw | csv_sink path="/tmp/ett.csv"\n}\n'
    'pipeline p after q {\n    source id="ett"\n        | zscore_scaler\n        | print limit=10\n}\n',
    'dag d { schedule = "@daily"; params = {epochs: 3} }\n'
    'source id="ett" | minmax_scaler | train_lstm model="ett:0.1", epoch=params.epochs | print\n',
    '# derived columns\nsource id="ett" | derive hot=OT > 40 and not is_null(HUFL),\n'
    "    ratio=if(HUFL != 0, OT / HUFL, null),\n"
    "    label=str(round(OT, 1)).upper(), m=max(abs(OT), sqrt(abs(HUFL)), 2 ** -1) | print",
    'readings = source id="ett" | select cols=["date", "HUFL", "OT"]\n'
    'readings | alert cond=OT > 40 and HUFL > 10, message="hot", level="critical"\n'
    'readings | snapshot size=48, on="alert"',
    "logsource path='/var/log/app.jsonl' | filter cond=`status code` >= 500 or msg.lower().contains('error')"
    " | split x, y\nx | print\ny | parquet_sink path='errors.parquet'",
    "source id='ett'; normalsource col='n', seed=7, count=10 | window size=4, step=2 | print",
]
DAGS = Path(__file__).resolve().parents[2] / "dags"
CORPUS += [p.read_text(encoding="utf-8") for p in sorted(DAGS.glob("*.amml"))]

# A token of AMML (roughly: the mutators only need pieces that look like the language).
TOKEN_RE = re.compile(
    r"""\s+|#[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`\n]*`|\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?"""
    r"""|[A-Za-z_]\w*|\*\*|[=!<>]=|\S"""
)
TOKEN_POOL = [
    "pipeline", "dag", "after", "join", "split", "and", "or", "not", "true", "false", "null", "params",
    "params.epochs", "source", "normalsource", "logsource", "filter", "derive", "select", "print", "stats",
    "minmax_scaler", "train_lstm", "alert", "csv_sink", "id", "cond", "cols", "col", "OT", "val1",
    "abs", "sqrt", "if", "coalesce", "round", "lower", "__class__", "__import__", "eval",
    "|", ",", "=", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "**", ".", "(", ")", "[", "]",
    "{", "}", ":", ";", "\n", "\n|", "\\\n", "#", "`", "'", '"', "'ett'", '"x"', "`a b`", "0", "1", "1.5",
    "1e308", "1e309", "9223372036854775807", "9223372036854775808", "1_000", "0.1e-5", "'\\n'", "'\\q'",
    "'\\x4'",
]
PUNCTUATION = "|,=()[]{}'\"`.;:#\\\n\t *+-/%<>!&@$?^~_"
SPECIAL_CHARS = ["\x00", "\r", "\r\n", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\ufeff", "\u200b",
                 "\u202e", "\u00a0", "é", "°", "ß", "İ", "ﬁ", "\U0001f600", "\uffff", "\U0010ffff", "\x7f",
                 "\x1b"]
CHUNKS = [
    "(", ")", "[", "]", "{", "}", "1+", "not ", "-", "2**", ".lower()", "'", '"', "`", "\\\n", "|", ",", "\n",
    "#", ";", "a and ", "x=", "a.b", "join a, ", "pipeline p { ", "\x00",
]
NESTING_SIZES = [1, 2, 3, 10, 63, 64, 65, 100, 1000, 5000]


def random_unicode(rng: random.Random) -> str:
    """Any code point, lone surrogates included (a str may hold one, though no UTF-8 file can)."""
    if rng.random() < 0.5:
        return rng.choice(SPECIAL_CHARS)
    return chr(rng.randrange(0x80, 0x110000))


def tokens(text: str) -> list[str]:
    return TOKEN_RE.findall(text)


# ---- mutations -----------------------------------------------------------------------------------


def _pos(rng: random.Random, text: str) -> int:
    return rng.randrange(len(text) + 1)


def delete_chars(rng: random.Random, text: str) -> str:
    i = _pos(rng, text)
    return text[:i] + text[i + rng.choice([1, 1, 1, 2, 5, 20]):]


def insert_char(rng: random.Random, text: str) -> str:
    i = _pos(rng, text)
    char = rng.choice(PUNCTUATION) if rng.random() < 0.7 else rng.choice("abcxyzOT019_")
    return text[:i] + char + text[i:]


def insert_unicode(rng: random.Random, text: str) -> str:
    i = _pos(rng, text)
    return text[:i] + random_unicode(rng) + text[i:]


def duplicate_slice(rng: random.Random, text: str) -> str:
    i = _pos(rng, text)
    j = min(len(text), i + rng.randrange(1, 40))
    return text[:j] + text[i:j] * rng.choice([1, 2, 10]) + text[j:]


def swap_chars(rng: random.Random, text: str) -> str:
    if len(text) < 2:
        return text
    i, j = sorted(rng.sample(range(len(text)), 2))
    return text[:i] + text[j] + text[i + 1:j] + text[i] + text[j + 1:]


def delete_token(rng: random.Random, text: str) -> str:
    toks = tokens(text)
    if toks:
        del toks[rng.randrange(len(toks))]
    return "".join(toks)


def duplicate_token(rng: random.Random, text: str) -> str:
    toks = tokens(text)
    if toks:
        i = rng.randrange(len(toks))
        toks.insert(i, toks[i])
    return "".join(toks)


def swap_tokens(rng: random.Random, text: str) -> str:
    toks = tokens(text)
    if len(toks) >= 2:
        i, j = rng.sample(range(len(toks)), 2)
        toks[i], toks[j] = toks[j], toks[i]
    return "".join(toks)


def replace_token(rng: random.Random, text: str) -> str:
    toks = tokens(text)
    if toks:
        toks[rng.randrange(len(toks))] = rng.choice(TOKEN_POOL)
    return "".join(toks)


def insert_token(rng: random.Random, text: str) -> str:
    toks = tokens(text)
    toks.insert(rng.randrange(len(toks) + 1), rng.choice(TOKEN_POOL) + rng.choice(["", " "]))
    return "".join(toks)


def insert_chunk(rng: random.Random, text: str) -> str:
    """Deep nesting, long operator chains and the like, at a random place."""
    i = _pos(rng, text)
    return text[:i] + rng.choice(CHUNKS) * rng.choice(NESTING_SIZES) + text[i:]


def splice(rng: random.Random, text: str) -> str:
    other = rng.choice(CORPUS)
    return text[:_pos(rng, text)] + other[_pos(rng, other):]


MUTATORS: list[Callable[[random.Random, str], str]] = [
    delete_chars, insert_char, insert_unicode, duplicate_slice, swap_chars, delete_token, duplicate_token,
    swap_tokens, replace_token, insert_token, insert_chunk, splice,
]


def mutated_cases(rng: random.Random, count: int) -> Iterator[str]:
    for _ in range(count):
        text = rng.choice(CORPUS)
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4, 8])):
            text = rng.choice(MUTATORS)(rng, text)
        yield text


def token_soup_cases(rng: random.Random, count: int) -> Iterator[str]:
    for _ in range(count):
        n = rng.randrange(1, 40)
        yield rng.choice([" ", "", "\n"]).join(rng.choice(TOKEN_POOL) for _ in range(n))


def pathological_cases() -> Iterator[str]:
    """Deterministic worst cases: each one inside an otherwise valid program."""
    values = [
        "(" * 5000 + "1" + ")" * 5000, "(" * 64 + "1" + ")" * 64, "(" * 65 + "1" + ")" * 65, "(" * 5000,
        ")" * 5000, "[" * 5000, "{" * 5000, "1+" * 5000 + "1", "1+" * 5000, "not " * 5000 + "true",
        "-" * 5000 + "1", "+-" * 3000 + "1", "2**" * 3000 + "2", "10 ** 10 ** 10", "2 ** 1024",
        "(-8) ** (1/3)", "OT" + ".lower()" * 3000, "OT.lower" * 3000, " and ".join(["OT"] * 3000),
        " or ".join(["OT > 1"] * 2000),
        "1 < 2 < 3", "9" * 5000, "9" * 30, "0" * 5000 + "1", "1" + "_0" * 3000, "1e99999", "1e-99999",
        "1." + "0" * 5000, "'" + "x" * 200_000 + "'", "'" + "ab" * 300_000 + "' + 'c'", "'x' * 3",
        "`" + "y" * 5000 + "`",
        "x" * 100_000, "min(" + "1, " * 5000 + "1)", "coalesce(" + "null, " * 5000 + "1)", "f(" * 70,
        "'\\N{LATIN SMALL LETTER E WITH ACUTE}'", "'\\N{nonsense}'", "'\\x'", "'\\777'",
        "'\\" + "u" + "d800'",
        "'a\x00b'", "\x00", "params." * 100 + "x", "params.__class__", "OT.__class__", "`__import__`('os')",
        "round(1.5, 99999999999)", "round(1.5, -99999999999)", "[1, [2, [3]]]", "{a: 1}", "1/0", "sqrt(-1)",
        "9223372036854775807 + 1", "9223372036854775807 * 9223372036854775807", "-9223372036854775807 - 2",
        "len(3)", "'a' + 1", "''.replace('', 'xx')", "'" + "a" * 900 + "'.replace('a', '" + "b" * 900 + "')",
        "'a'" + ".replace('a', 'aaaaaaaaaa')" * 9, "'ß" * 40_000 + "'.upper()", "'x'" + " + 'x'" * 2000,
        "'\\ud800'", "'\\udfff' + 'x'", "'\\U0000d800'", "\"\\ud83d\\ude00\"",
        "'" + "(" * 5000 + "'", "`" + "[" * 5000 + "`", "abs(" * 64 + "1" + ")" * 64,
        "- " * 99 + "1", "- " * 100 + "1", "OT" + " + OT" * 100, "not " * 100 + "OT",
        "[" + "1, " * 5000 + "1]",
    ]
    for value in values:
        yield f"source id='ett' | derive x={value} | print"
    yield "source id='ett'" + " | minmax_scaler" * 2000 + " | print"
    yield "source id='ett'" + " | print" * 500
    yield "\n".join(["source id='ett' | nosuch"] * 200)
    yield "\n".join(f"pipeline p{i}" + (f" after p{i - 1}" if i else "") + " { source id='ett' | print }"
                    for i in range(300))
    yield "\n".join(f"pipeline p{i} after p{(i + 1) % 300} {{ source id='ett' | print }}" for i in range(300))
    yield "\n".join(["f0 = source id='ett'", *(f"f{i} = f{i - 1} | minmax_scaler" for i in range(1, 500)),
                     "f499 | print"])
    yield "\n".join(f"f{i} = f{(i + 1) % 300} | print" for i in range(300))
    yield "dag d { params = {" + ", ".join(f"p{i}: {i}" for i in range(3000)) + "} }\nsource id='ett' | print"
    yield "dag d { tags = " + "[" * 64 + "]" * 64 + " }\nsource id='ett' | print"
    yield "\n" * 50_000 + "source id='ett' | print"
    yield "source id='ett'" + "\n" * 50_000 + "| print"
    yield "#" + "x" * 200_000 + "\nsource id='ett' | print"
    yield ";" * 50_000
    yield "x" * 1_000_001
    yield "(" * 1_000_001
    yield "".join(chr(c) for c in range(0x20, 0x3000))
    yield "\x00" * 1000
    yield "\r\n".join(CORPUS)
    yield "\r".join(CORPUS)
    yield "\ufeff" + CORPUS[0]
    yield "\ufeff\ufeff" + CORPUS[0]
    yield "# note (see\n" * 5000 + "source id='ett' | print"
    yield "source id='ett' | derive " + ", ".join(f"x{i}=nosuch{i}()" for i in range(5000)) + " | print"
    yield "source id='ett' | derive x='\\ud800' | print\n" * 300
    yield "\n".join(f"pipeline p{i} {{ source id='ett' | print }}" for i in range(2000))


# ---- the property --------------------------------------------------------------------------------


def problems_with(text: str) -> list[str]:
    """Compile ``text``; describe every way the outcome breaks the contract (empty list: all is well)."""
    problems: list[str] = []
    start, start_cpu = time.perf_counter(), time.process_time()
    try:
        result = compiler.compile_source(text, FILENAME, cache=compiler.ProgramCache())
    except AmmlError as exc:
        problems += error_problems(exc, text)
    except Exception as exc:  # any other exception is a compiler bug
        problems.append(f"raised {type(exc).__name__}: {exc}")
    else:
        if not isinstance(result, Program):
            problems.append(f"returned {type(result).__name__}, not a Program")
    problems += ast_printer_problems(text)
    elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    if elapsed_cpu > TIME_LIMIT or elapsed > WALL_TIME_LIMIT:
        problems.append(f"took {elapsed_cpu:.2f} s of CPU time, {elapsed:.2f} s in all "
                        f"(limits {TIME_LIMIT} s and {WALL_TIME_LIMIT} s)")
    return problems


def ast_printer_problems(text: str) -> list[str]:
    """`amml compile --emit ast` prints every item of the parse: that must not recurse too deep either."""
    try:
        for item in compiler.parse_source(text, FILENAME).items:
            repr(item)
    except AmmlError:
        return []
    except Exception as exc:  # a RecursionError here is a traceback in the CLI
        return [f"parse_source or the AST printer raised {type(exc).__name__}: {exc}"]
    return []


def error_problems(exc: AmmlError, text: str) -> list[str]:
    problems: list[str] = []
    try:
        rendered = str(exc)
    except Exception as render_exc:
        return [f"str() of {type(exc).__name__} raised {type(render_exc).__name__}: {render_exc}"]
    if FILENAME not in rendered:
        problems.append(f"{type(exc).__name__} does not name the file: {rendered[:200]!r}")
    errors = exc.errors if isinstance(exc, AmmlCompileErrors) else [exc]
    if isinstance(exc, AmmlCompileErrors) and not exc.errors:
        problems.append("AmmlCompileErrors without errors")
    max_line = text.count("\n") + 2  # the parser sees the text with a newline appended
    for e in errors:
        context = e.context()
        if len(context) > MAX_CONTEXT:
            problems.append(f"{type(e).__name__} shows {len(context)} characters of context")
        if e is not exc:
            problems += error_problems(e, text)
        if e.line is not None and not (isinstance(e.line, int) and 1 <= e.line <= max_line):
            problems.append(f"{type(e).__name__} has line {e.line!r} (the text has {max_line - 1} lines)")
        if e.column is not None and not (isinstance(e.column, int) and e.column >= 1):
            problems.append(f"{type(e).__name__} has column {e.column!r}")
    return problems


def check_all(cases: list[str]) -> None:
    failures = []
    for number, text in enumerate(cases):
        problems = problems_with(text)
        if problems:
            failures.append(f"case {number}: {text[:300]!r}{'…' if len(text) > 300 else ''} "
                            f"({len(text)} chars)\n    " + "\n    ".join(problems))
    summary = f"{len(failures)} of {len(cases)} inputs broke the contract:\n"
    assert not failures, summary + "\n".join(failures[:10])


@pytest.fixture(scope="module", autouse=True)
def _warm_parser() -> None:
    """Build the lark parser once before anything is timed."""
    compiler.compile_source(CORPUS[0], FILENAME, cache=compiler.ProgramCache())


def test_corpus_compiles() -> None:
    for text in CORPUS:
        assert isinstance(compiler.compile_source(text, FILENAME, cache=compiler.ProgramCache()), Program)


def test_corpus_compiles_after_a_byte_order_mark() -> None:
    for text in CORPUS:
        program = compiler.compile_source("\ufeff" + text, FILENAME, cache=compiler.ProgramCache())
        assert program.to_json() == compiler.compile_source(text, FILENAME, cache=compiler.ProgramCache()).to_json()


def test_mutated_programs() -> None:
    rng = random.Random(SEED)
    check_all(list(mutated_cases(rng, 3000)))


def test_token_soup() -> None:
    rng = random.Random(SEED + 1)
    check_all(list(token_soup_cases(rng, 500)))


def test_pathological_inputs() -> None:
    check_all(list(pathological_cases()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(st.one_of(st.characters(), st.characters(categories=["Cs"]))))
def test_random_text(text: str) -> None:
    problems = problems_with(text)
    assert not problems, f"{text!r}: {problems}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.lists(st.one_of(st.sampled_from(TOKEN_POOL), st.text(PUNCTUATION, max_size=3)),
                     max_size=30).map(" ".join))
def test_random_token_text(text: str) -> None:
    problems = problems_with(text)
    assert not problems, f"{text!r}: {problems}"


@pytest.mark.parametrize(
    "text",
    [
        "source id='\ud800' | print",
        "# \udfff\nsource id='ett' | print",
        "source id='ett' | derive x=`a\udc80` | print",
        "source id='ett' | print\ud800",
        "\ud800",
    ],
    ids=["string", "comment", "quoted-name", "after-pipe", "alone"],
)
def test_lone_surrogates_are_amml_errors(text: str) -> None:
    """A str holding a lone surrogate is not text (it cannot be encoded, hashed or shown as UTF-8)."""
    assert problems_with(text) == []
    with pytest.raises(AmmlError, match="surrogate"):
        compiler.compile_source(text, FILENAME, cache=compiler.ProgramCache())
