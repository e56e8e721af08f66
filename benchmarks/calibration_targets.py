"""Measure the simulator's calibration targets on the registered real data and compare the presets with them.

    ATTUNE_DATA_DIR=../shared/data ATTUNE_OFFLINE=1 OMP_NUM_THREADS=1 \
        python benchmarks/calibration_targets.py [--write] [--docs] [--sizes small default]

Prints the measured targets (``attune_lib.datasets.measure_calibration_targets``), every reference's
targets with bands and sources, and, for each simulator preset and size, the simulated value of every
statistic next to its target. ``--write`` rewrites the ``MEASURED_TARGETS`` table shipped in
``attune_lib/datasets/_calibration.py``; ``--docs`` rewrites the generated tables of the
"Calibration targets" section of ``docs/simulator.md`` (between its ``calibration-tables`` markers).
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from attune_lib.datasets import _calibration as cal
from attune_lib.datasets import calibration_report, calibration_targets, simulate_multiome

REPO = Path(__file__).resolve().parents[1]
LIB = REPO / "attune_lib" / "datasets" / "_calibration.py"
DOCS = REPO / "docs" / "simulator.md"
#: the reference each preset is compared with (first name with a target wins)
PRESET_REFERENCES = {
    "pbmc": ["pbmc10k_multiome"],
    "skin": ["share_seq_skin", "10x_multiome_technology"],
    "cortex": ["fetal_cortex_trevino", "10x_multiome_technology"],
}


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "**no**"
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    v = float(v)
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _md(df: pd.DataFrame, cols: list[str], index_name: str = "statistic") -> str:
    lines = ["| " + " | ".join([index_name, *cols]) + " |", "|" + "---|" * (len(cols) + 1)]
    for idx, row in df.iterrows():
        lines.append("| " + " | ".join([f"`{idx}`", *[r if isinstance(r := row[c], str) else _fmt(r)
                                                       for c in cols]]) + " |")
    return "\n".join(lines)


def write_library_table(measured: pd.DataFrame) -> None:
    rows = "\n".join(f"    ({r.dataset!r}, {r.statistic!r}, {float(r.value)!r},\n     {r.how!r}),"
                     for r in measured.itertuples())
    block = f"MEASURED_TARGETS: list[tuple[str, str, float, str]] = [\n{rows}\n]\n"
    text = LIB.read_text()
    new, n = re.subn(r"(# BEGIN MEASURED TARGETS[^\n]*\n).*?(# END MEASURED TARGETS)",
                     lambda m: m.group(1) + block + m.group(2), text, flags=re.S)
    if n != 1:
        raise SystemExit(f"{LIB}: the MEASURED TARGETS markers were not found exactly once")
    LIB.write_text(new)
    print(f"wrote {len(measured)} measured values into {LIB.relative_to(REPO)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite MEASURED_TARGETS in _calibration.py")
    ap.add_argument("--docs", action="store_true", help="rewrite the generated tables in docs/simulator.md")
    ap.add_argument("--sizes", nargs="+", default=["small", "default"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    measured = cal.measure_calibration_targets(seed=args.seed)
    print(f"measured {len(measured)} values in {time.perf_counter() - t0:.1f} s")
    with pd.option_context("display.width", 200, "display.max_colwidth", 60, "display.max_rows", 200):
        print(measured.to_string())
    if args.write:
        write_library_table(measured)

    parts = []
    wide = measured.pivot_table(index="statistic", columns="dataset", values="value", aggfunc="first")
    order = [s for s in cal.CALIBRATION_STATISTICS.index if s in wide.index]
    wide = wide.loc[order, [c for c in cal.MEASURED_DATASETS if c in wide.columns]]
    parts.append("Measured on the real data (`python benchmarks/calibration_targets.py`):\n\n"
                 + _md(wide, list(wide.columns)))
    for ref in ("pbmc10k_multiome", "share_seq_skin", "fetal_cortex_trevino"):
        t = calibration_targets(ref, measured=measured)
        t["band"] = [f"{_fmt(lo)} - {_fmt(hi)}" for lo, hi in zip(t["low"], t["high"])]
        t["from"] = [s.split(";")[0].replace("measured: ", "").split(",")[0].split(" (")[0] for s in t["source"]]
        parts.append(f"Targets of `{ref}` (band and the first source; `calibration_targets({ref!r})` gives the "
                     f"full source text):\n\n" + _md(t, ["target", "band", "from"]))

    for preset, refs in PRESET_REFERENCES.items():
        cols = {}
        for size in args.sizes:
            t1 = time.perf_counter()
            sim = simulate_multiome(preset, size=size, seed=args.seed, motifs=False)
            rep = calibration_report(sim, reference=refs, measured=measured, seed=args.seed)
            print(f"\n{preset} / {size} vs {refs} ({sim.n_obs} cells, {time.perf_counter() - t1:.1f} s):")
            with pd.option_context("display.width", 200, "display.max_rows", 200):
                print(rep[["simulated", "target", "low", "high", "in_band", "ratio"]].to_string())
            cols[size] = rep
        first = cols[args.sizes[0]]
        table = first[["target"]].copy()
        table["band"] = [f"{_fmt(lo)} - {_fmt(hi)}" for lo, hi in zip(first["low"], first["high"])]
        for size, rep in cols.items():
            table[size] = rep["simulated"]
            table[f"in band ({size})"] = rep["in_band"]
        n_out = {s: int((~r["in_band"]).sum()) for s, r in cols.items()}
        parts.append(f"`{preset}` preset vs {' + '.join(f'`{r}`' for r in refs)} (seed {args.seed}; out of band: "
                     + ", ".join(f"{n} of {len(cols[s])} at `{s}`" for s, n in n_out.items()) + "):\n\n"
                     + _md(table, list(table.columns)))

    if args.docs:
        text = DOCS.read_text()
        block = "\n\n".join(parts)
        new, n = re.subn(r"(<!-- calibration-tables: start[^\n]*-->\n).*?(<!-- calibration-tables: end -->)",
                         lambda m: m.group(1) + "\n" + block + "\n\n" + m.group(2), text, flags=re.S)
        if n != 1:
            raise SystemExit(f"{DOCS}: the calibration-tables markers were not found exactly once")
        DOCS.write_text(new)
        print(f"wrote the tables into {DOCS.relative_to(REPO)}")
    else:
        print("\n\n".join(parts))


if __name__ == "__main__":
    main()
