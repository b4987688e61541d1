"""Benchmark: the vectorised callback VM against the same condition written by hand in pandas.

Run from the project root::

    .venv/bin/python bench/vm.py [--rows 1000000] [--repeat 7] [--records 100000]

What is measured
----------------
The filter condition ``(a * 2 + b) > c and not (d < 0)`` is compiled once with
``compiler.expressions.compile_expression``. On a DataFrame of ``--rows`` rows (columns a, b, c, d drawn
with ``np.random.default_rng(0)``) one evaluation is:

* VM: ``airflow_amml.runtime.batch_vm.eval_batch(code, df)`` then ``batch_vm.as_mask(result["value"], len(df))``,
  i.e. column loading (NaN → null mask), the bytecode run, and the keep-mask, as a filter component does it.
* pandas: ``((df.a * 2 + df.b) > df.c) & ~(df.d < 0)`` converted to a numpy bool array.

Both are timed ``--repeat`` times; the table shows the best and the median in ms and the ratio VM/pandas
(of the bests, and of the medians). The masks are compared before timing. Three data sets:

* float64: standard normal values, no missing values.
* float64 + 10% NaN: each column independently has 10% NaN. The VM treats NaN as null with three-valued
  logic, so a row whose ``d`` is NaN is not kept (``not (null < 0)`` is null). The literal pandas
  expression keeps it (``~(NaN < 0)`` is True), so the like-for-like baseline is the literal expression
  ``& df.d.notna()``; the table uses that, and also prints how many rows the literal expression gets
  "wrong" by SQL semantics, and its timing for reference.
* int64: integers in [-1000, 1000); the VM's integer ``+ - *`` check for 64-bit overflow (null on
  overflow), pandas does not.

A diagnostic section repeats the VM with a dict of numpy arrays (``df[c].to_numpy()``) instead of the
DataFrame, which separates the cost of turning pandas Series into VM columns from the bytecode run.

Finally the record VM (``compiler.vm.eval_record``, the reference semantics, one dict at a time) runs over
``--records`` dict records for information, in records/s, and is checked against the batch mask.

How to read the output
----------------------
"VM/pandas" below 1 means the VM is faster. The target is VM/pandas ≤ 2x (judged on the best times);
each line says PASS or MISS. This is a benchmark, not a test: it never fails on timing, only on a mask
mismatch, which would be a bug.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from airflow_amml.runtime import batch_vm  # noqa: E402 - after the sys.path fix, so a plain checkout works too
from compiler import vm  # noqa: E402
from compiler.expressions import compile_expression  # noqa: E402

EXPRESSION = "(a * 2 + b) > c and not (d < 0)"
TARGET_RATIO = 2.0


def make_frame(rows: int, kind: str) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    if kind == "int64":
        return pd.DataFrame({c: rng.integers(-1000, 1000, rows, dtype=np.int64) for c in "abcd"})
    df = pd.DataFrame({c: rng.standard_normal(rows) for c in "abcd"})
    if kind == "nan":
        for c in "abcd":
            df.loc[rng.random(rows) < 0.10, c] = np.nan
    return df


def vm_mask(code, columns: pd.DataFrame | dict[str, np.ndarray]) -> np.ndarray:
    """What a filter does with a batch: evaluate the callback, then turn `value` into a keep-mask."""
    result = batch_vm.eval_batch(code, columns)
    n = len(columns) if isinstance(columns, pd.DataFrame) else len(next(iter(columns.values())))
    return batch_vm.as_mask(result["value"], n)


def pandas_mask(df: pd.DataFrame) -> np.ndarray:
    return (((df.a * 2 + df.b) > df.c) & ~(df.d < 0)).to_numpy(dtype=bool)


def pandas_mask_null_aware(df: pd.DataFrame) -> np.ndarray:
    """The literal expression plus what SQL null logic adds: a NaN `d` makes `not (d < 0)` null → drop."""
    return (((df.a * 2 + df.b) > df.c) & ~(df.d < 0) & df.d.notna()).to_numpy(dtype=bool)


def timings(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm-up: first-touch page faults, lazy imports
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def verdict(ratio: float) -> str:
    return "PASS" if ratio <= TARGET_RATIO else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--records", type=int, default=100_000, help="dict records for the record VM")
    args = parser.parse_args()

    code = compile_expression(EXPRESSION)
    print("AMML callback VM benchmark")
    print(f"  python {sys.version.split()[0]}, numpy {np.__version__}, pandas {pd.__version__}")
    print(f"  expression: {EXPRESSION}")
    print(f"  rows: {args.rows:,}; best and median of {args.repeat} runs (after one warm-up)")
    print()
    header = (f"  {'data':<20}{'kept':>8}{'VM best':>10}{'VM med':>10}{'pd best':>10}{'pd med':>10}"
              f"{'VM/pd best':>12}{'VM/pd med':>11}  target ≤ {TARGET_RATIO:g}x")
    print(header)
    print("  " + "-" * (len(header) - 2))

    notes: list[str] = []
    diagnostics: list[str] = []
    cases = [
        ("float64", "float", pandas_mask),
        ("float64 + 10% NaN", "nan", pandas_mask_null_aware),
        ("int64", "int64", pandas_mask),
    ]
    frames = {}
    for label, kind, baseline in cases:
        df = frames[kind] = make_frame(args.rows, kind)
        got, want = vm_mask(code, df), baseline(df)
        if got.dtype != np.bool_ or not np.array_equal(got, want):
            raise SystemExit(f"{label}: VM mask differs from pandas in {int((got != want).sum())} rows")
        vm_t = timings(lambda df=df: vm_mask(code, df), args.repeat)
        pd_t = timings(lambda df=df, baseline=baseline: baseline(df), args.repeat)
        best_ratio = min(vm_t) / min(pd_t)
        med_ratio = statistics.median(vm_t) / statistics.median(pd_t)
        print(f"  {label:<20}{got.mean():8.1%}{min(vm_t) * 1e3:10.2f}{statistics.median(vm_t) * 1e3:10.2f}"
              f"{min(pd_t) * 1e3:10.2f}{statistics.median(pd_t) * 1e3:10.2f}"
              f"{best_ratio:11.2f}x{med_ratio:10.2f}x  {verdict(best_ratio)}")
        arrays = {c: df[c].to_numpy() for c in df.columns}
        if not np.array_equal(vm_mask(code, arrays), got):
            raise SystemExit(f"{label}: VM on numpy arrays differs from VM on the DataFrame")
        np_t = timings(lambda arrays=arrays: vm_mask(code, arrays), args.repeat)
        diagnostics.append(
            f"  {label:<20}{min(np_t) * 1e3:10.2f} ms best, VM/pandas {min(np_t) / min(pd_t):5.2f}x; "
            f"the DataFrame (Series) input adds ≈ {(min(vm_t) - min(np_t)) * 1e3:.2f} ms"
        )
        if kind == "nan":
            literal = pandas_mask(df)
            lit_t = timings(lambda df=df: pandas_mask(df), args.repeat)
            notes.append(
                f"  NaN case: the literal pandas expression keeps {int((literal & ~got).sum()):,} rows that SQL null "
                f"logic drops (d is NaN); it takes {min(lit_t) * 1e3:.2f} ms best, so VM/literal = "
                f"{min(vm_t) / min(lit_t):.2f}x"
            )
    print("  (masks equal to the pandas baseline in every case; ratios are VM time / pandas time)")
    for note in notes:
        print(note)
    print()
    print("diagnostic: the same VM given a dict of numpy arrays (df[c].to_numpy()) instead of the DataFrame")
    for line in diagnostics:
        print(line)

    # ---- record VM ------------------------------------------------------------------------------
    df = frames["float"]
    n = min(args.records, len(df))
    records = df.head(n).to_dict("records")
    want = vm_mask(code, df.head(n))
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        kept = [vm.eval_record(code, r)["value"] is True for r in records]
        runs.append(time.perf_counter() - t)
    if kept != want.tolist():
        raise SystemExit("record VM disagrees with the batch VM")
    best = min(runs)
    print()
    print(f"record VM (eval_record, {n:,} dict records, best of 3): {best * 1e3:.0f} ms, "
          f"{n / best:,.0f} records/s ({best / n * 1e6:.2f} us/record); batch VM on {args.rows:,} rows: "
          f"{args.rows / min(timings(lambda: vm_mask(code, df), 3)):,.0f} records/s")


if __name__ == "__main__":
    main()
