"""The names of the metrics and of their sets, without importing them (or torch): what a config's
`score.metrics` and `sculpt score -m` may name. `sculptcli.metrics` registers exactly these names (checked when
it is imported) and takes its sets from here."""

from __future__ import annotations

from sculptcli.errors import UserError, did_you_mean

# In registration order (sculptcli/metrics/builtin.py, context.py, factors.py).
METRIC_NAMES: tuple[str, ...] = (
    "lps", "nmse", "ssim", "mmd2_prior", "cov_ratio", "prior_test", "ks", "context", "mig", "sap", "dci",
    "modularity", "infomec", "lds", "tc_gauss", "tc_mmd", "factorvae", "aux_corr", "betavae",
)  # fmt: skip

# Named sets. basic: distribution and LPS; fast: seconds on 10,000 codes (the end-of-training default, with the
# prior test: the aggregate matching the declared prior is the tool's first promise; context only on data with
# intervention contexts, quad); supervised: every factor metric; all: everything (the `sculpt score` default).
SETS: dict[str, list[str]] = {
    "basic": ["lps", "nmse", "mmd2_prior", "cov_ratio", "prior_test", "ks"],
    "fast": [
        "lps", "nmse", "mmd2_prior", "cov_ratio", "prior_test", "ks", "mig", "sap", "lds", "tc_gauss", "tc_mmd",
        "aux_corr", "context",
    ],
    "supervised": ["mig", "sap", "dci", "factorvae", "betavae", "modularity", "infomec", "lds", "aux_corr"],
}  # fmt: skip
SETS["all"] = SETS["basic"] + ["ssim"] + SETS["supervised"] + ["tc_gauss", "tc_mmd", "context"]


def resolve(names: list[str]) -> list[str]:
    """Metric names from names and set names, in order, each once; an unknown name is a UserError."""
    out: list[str] = []
    for name in names:
        for m in SETS.get(name, [name]):
            if m not in METRIC_NAMES:
                raise UserError(
                    f"unknown metric '{m}'.{did_you_mean(m, [*SETS, *METRIC_NAMES])}",
                    fix=f"choose sets ({', '.join(SETS)}) or metrics ({', '.join(METRIC_NAMES)})",
                )
            if m not in out:
                out.append(m)
    return out
