"""The dSprites trade-off figure of RESULTS.md §f: LPS-lgbm and NMSE of AE-MMD, FactorVAE (and AE-MMD + mmd_tc)
against the training budget, as multiples of the quick budget (6,500 steps at batch 128).

    python -m benchmarks.plot_tradeoff STUDY_JSONL... --out benchmarks/figures/dsprites-tradeoff.png

0.5× and 2× points come from `study_cpu_budget` rows (T05-*, T2-*, M05-*; one seed each); the 1× points are the
two-seed means of `benchmarks/data/reproduce-quick-2026-12-05/compare.csv` (error bars: their std)."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

ONE_X = Path(__file__).parent / "data" / "reproduce-quick-2026-12-05" / "compare.csv"
ROWS = {  # study row -> (curve, budget multiple)
    "T05-mmd": ("AE-MMD", 0.5), "T2-mmd": ("AE-MMD", 2.0),
    "T05-fvae": ("FactorVAE", 0.5), "T2-fvae": ("FactorVAE", 2.0),
    "M05-mmd-tc": ("AE-MMD + mmd_tc", 0.5), "M1-mmd-tc": ("AE-MMD + mmd_tc", 1.0),
}  # fmt: skip
GROUPS = {"dsprites-mmd-gaussian": "AE-MMD", "dsprites-factorvae": "FactorVAE"}


def points(studies: list[Path]) -> dict[str, list[tuple[float, float, float, float]]]:
    """curve -> [(budget multiple, LPS-lgbm, its std, NMSE dB)], sorted by budget."""
    out: dict[str, list] = {}
    with ONE_X.open() as f:
        for r in csv.DictReader(f):
            if r["group"] in GROUPS:
                out.setdefault(GROUPS[r["group"]], []).append(
                    (1.0, float(r["lps.lgbm.mean"]), float(r["lps.lgbm.std"]), float(r["nmse_db.mean"]))
                )
    for path in studies:
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if r["name"] in ROWS:
                curve, x = ROWS[r["name"]]
                out.setdefault(curve, []).append((x, r["lps_lgbm"], 0.0, r["nmse_db"]))
    return {k: sorted(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("studies", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/figures/dsprites-tradeoff.png"))
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = points(args.studies)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for name, pts in curves.items():
        xs = [p[0] for p in pts]
        a.errorbar(xs, [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3, label=name)
        b.plot(xs, [p[3] for p in pts], marker="o", label=name)
    for ax in (a, b):
        ax.set_xscale("log", base=2)
        ax.set_xticks([0.5, 1, 2], ["0.5×", "1×", "2×"])
        ax.set_xlabel("budget (× the quick budget: 6,500 steps at batch 128)")
        ax.grid(alpha=0.3)
    a.set_ylabel("LPS-lgbm (lower: more independent codes)")
    b.set_ylabel("NMSE dB (lower: better reconstruction)")
    a.legend()
    fig.suptitle("dSprites, CPU budgets: predictability and reconstruction against training length")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    for name, pts in curves.items():
        print(name, [(x, round(l, 3), round(n, 2)) for x, l, _, n in pts])


if __name__ == "__main__":
    main()
