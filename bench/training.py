"""Training overhead: the AMML training pipeline vs a plain Keras script on the same data and model.

    .venv/bin/python bench/training.py [--epochs 3] [--rows 17420]

Both sides train the paper's model (dags/models/ett-0.1.yaml: LSTM(32, tanh) → Dense(1), MAE, adam,
window 24 over the 7 ETTh1 columns, batch 32, 10 % validation from the end) on min-max scaled ETTh1:

* AMML: `amml run` of `source id="ett" | minmax_scaler | train_lstm model="ett:0.1", epoch=N | print` in a
  fresh process (multiprocess executor: source, scaler, trainer and print each in their own process, the
  model registered with its plots in a throwaway registry);
* plain Keras: a hand-written script in a fresh process (pandas → numpy windows → keras.Sequential.fit →
  model.save), the floor a data scientist would write by hand.

Both are timed end to end (interpreter start, TensorFlow import, data loading, training, saving), best of
`--repeat` runs. Target: AMML / Keras ≤ 1.10.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the copy `source id="ett"` reads: $AMML_ETT_PATH, else the one shipped in the package
ETT = Path(os.environ.get("AMML_ETT_PATH") or ROOT / "airflow_amml" / "data" / "ett" / "ETTh1.csv")

PLAIN_KERAS = textwrap.dedent(
    """
    import sys
    import numpy as np
    import pandas as pd
    import keras

    path, rows, epochs, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    cols = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    frame = pd.read_csv(path).iloc[:rows]
    values = frame[cols].to_numpy(dtype=np.float64)
    low, high = values.min(axis=0), values.max(axis=0)
    scaled = ((values - low) / (high - low)).astype(np.float32)
    window = 24
    x = np.lib.stride_tricks.sliding_window_view(scaled[:-1], window, axis=0).transpose(0, 2, 1)
    y = scaled[window:, cols.index("OT")][:, None]
    n_val = int(len(x) * 0.1)
    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.Input(shape=(window, len(cols))),
        keras.layers.LSTM(32, activation="tanh"),
        keras.layers.Dense(1),
    ])
    model.compile(loss="mae", optimizer=keras.optimizers.Adam(learning_rate=0.001))
    history = model.fit(x[:-n_val], y[:-n_val], validation_data=(x[-n_val:], y[-n_val:]), epochs=epochs,
                        batch_size=32, shuffle=True, verbose=0)
    model.save(out)
    print("final loss", history.history["loss"][-1])
    """
)


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{result.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=17420)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="amml-bench-training-") as tmp:
        work = Path(tmp)
        (work / "models").mkdir()
        (work / "models" / "ett-0.1.yaml").write_text((ROOT / "dags" / "models" / "ett-0.1.yaml").read_text())
        (work / "train.amml").write_text(
            f'source id="ett", limit={args.rows} | minmax_scaler '
            f'| train_lstm model="ett:0.1", epoch={args.epochs} | print\n'
        )
        (work / "plain.py").write_text(PLAIN_KERAS)
        env = {**os.environ, "AMML_ETT_PATH": str(ETT), "TF_CPP_MIN_LOG_LEVEL": "2"}
        amml_times, keras_times = [], []
        for i in range(args.repeat):
            env["AMML_HOME"] = str(work / f"home{i}")
            amml_times.append(timed([sys.executable, "-m", "airflow_amml.cli", "run", "train.amml"], env, work))
            keras_times.append(
                timed([sys.executable, "plain.py", str(ETT), str(args.rows), str(args.epochs),
                       str(work / f"plain{i}.keras")], env, work)
            )
    amml, plain = min(amml_times), min(keras_times)
    print(f"training ETTh1 ({args.rows} rows, {args.epochs} epochs), best of {args.repeat}, end to end:")
    print(f"  AMML pipeline (amml run)   {amml:7.2f} s   runs: {', '.join(f'{t:.2f}' for t in amml_times)}")
    print(f"  plain Keras script         {plain:7.2f} s   runs: {', '.join(f'{t:.2f}' for t in keras_times)}")
    ratio = amml / plain
    print(f"  ratio AMML / Keras         {ratio:7.3f}    target <= 1.10: {'PASS' if ratio <= 1.10 else 'MISS'}")


if __name__ == "__main__":
    main()
