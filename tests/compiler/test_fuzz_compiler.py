"""Fuzzing: random and mutated inputs only ever raise AmmlError, never another exception, never hang."""

import random
import time

import pytest

from compiler import AmmlError, ProgramCache, compile_source
from compiler.bytecode import Program

CORPUS = [
    "normalsource col='val1', mean=0, std=1 | filter cond=val1 > 1 | print",
    'source id="ett" | minmax_scaler | train_lstm model="ett:0.1", epoch=20 | print',
    "a = normalsource col='v'\nb = normalsource col='v'\njoin a, b | stats cols=['v'] | print",
    "pipeline p after q { source id='x' | derive y = abs(OT) * 2 ** -1, z = `a b`.lower() | print }\n"
    "pipeline q { normalsource | split s, t\ns | print\nt | csv_sink path='x.csv' }",
    'dag d { schedule = "@daily"; params = {epochs: 3} }\nsource id="ett" | train_lstm model="m", epoch=params.epochs',
]
TOKENS = ["|", ",", "=", "==", "(", ")", "[", "]", "{", "}", "'", '"', "`", "\n", ";", "join", "split", "pipeline",
          "dag", "after", "params.", "not", "and", "**", "-", "1e999", "99999999999999999999", "__class__", ".", "\\",
          "\x00", "é", "\u2028", "#", "null", "true", "print", "filter cond=", "source id="]


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        i = rng.randint(0, len(text))
        action = rng.randrange(5)
        if action == 0 and text:
            text = text[:i] + text[i + rng.randint(1, 5):]
        elif action == 1:
            text = text[:i] + rng.choice(TOKENS) + text[i:]
        elif action == 2:
            j = rng.randint(0, len(text))
            text = text[:i] + text[min(i, j):max(i, j)] + text[i:]
        elif action == 3:
            text = text[:i] + chr(rng.randint(0, 0x2FFF)) + text[i:]
        else:
            text = text[:i] + rng.choice(["(" * 300, "1+" * 3000, "not " * 2000, "- " * 3000]) + text[i:]
    return text


def check(text: str) -> None:
    started = time.perf_counter()
    try:
        result = compile_source(text, "fuzz.amml", cache=ProgramCache())
        assert isinstance(result, Program)
    except AmmlError as exc:
        rendered = str(exc)
        assert "fuzz.amml" in rendered, rendered
        assert exc.line is None or exc.line >= 1
        assert exc.column is None or exc.column >= 1
    except Exception as exc:  # the property under test: nothing but AmmlError escapes
        pytest.fail(f"{type(exc).__name__}: {exc}\ninput: {text!r}")
    assert time.perf_counter() - started < 2.0, f"slow input: {text[:200]!r}"


def test_mutated_programs_only_raise_amml_errors():
    rng = random.Random(1234)
    for _ in range(3000):
        check(mutate(rng, rng.choice(CORPUS)))


def test_random_text_only_raises_amml_errors():
    rng = random.Random(99)
    alphabet = "abc xyz_019|,=()[]{}'\"`.#;\n\t+-*/%<>!&^~@$\\"
    for _ in range(1000):
        check("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120))))
