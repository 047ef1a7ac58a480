"""Write the example CSV files in examples/ (seeded: running it again gives the same files).

- examples/regression.csv: ice-cream sales against the day's temperature, 300 days, measured in
  spring and in high summer only (nothing between 17 and 24 degrees), the sales noisier on hot
  days; a humidity column the model does not need, and three days with a missing reading.
- examples/classification.csv: three kinds of beans by length and width in millimetres, 100 of
  each, the label written as text; two rows with a missing measurement.

    python scripts/make_examples.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "examples"


def regression(rng: np.random.Generator) -> list[list[str]]:
    temperature = np.concatenate([rng.uniform(8, 17, 150), rng.uniform(24, 33, 150)])
    rng.shuffle(temperature)
    humidity = rng.uniform(30, 90, 300)
    sales = (
        40
        + 6 * temperature
        + 0.15 * temperature**2
        + rng.normal(0, 1, 300) * (4 + 0.8 * temperature)
    )
    rows = [
        [f"{t:.1f}", f"{h:.0f}", f"{s:.0f}"]
        for t, h, s in zip(temperature, humidity, sales, strict=True)
    ]
    for i in (17, 123, 250):
        rows[i][0] = "NA"
    return [["temperature_c", "humidity_pct", "sales"], *rows]


def classification(rng: np.random.Generator) -> list[list[str]]:
    kinds = {"kidney": (15.0, 8.0), "lima": (22.0, 14.0), "navy": (9.0, 7.5)}
    rows = []
    for name, (length, width) in kinds.items():
        a = rng.normal(length, 1.6, 100)
        b = 0.4 * (a - length) + rng.normal(width, 0.9, 100)
        rows += [[f"{x:.1f}", f"{y:.1f}", name] for x, y in zip(a, b, strict=True)]
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    rows[40][1] = ""
    rows[200][0] = "NA"
    return [["length_mm", "width_mm", "bean"], *rows]


def main() -> None:
    OUT.mkdir(exist_ok=True)
    rng = np.random.default_rng(2015)
    for name, rows in (("regression", regression(rng)), ("classification", classification(rng))):
        with open(OUT / f"{name}.csv", "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(rows)
        print(f"wrote {OUT / f'{name}.csv'} ({len(rows) - 1} rows)")


if __name__ == "__main__":
    main()
