"""The periodic held-out evaluation during training: objective, NMSE, LPS (linear and nonlinear probes),
MMD² to the prior and the state of the codes (collapsed dimensions)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import torch

from sculptcli.data.base import Batch
from sculptcli.metrics.distribution import mmd2_to_prior
from sculptcli.metrics.lps import lps
from sculptcli.metrics.recon import nmse

LIVE_PRIOR_TEST_N = 1000  # codes of the live prior test (≈ 0.5 s with 100 permutations on one core)
LIVE_PRIOR_TEST_PERMUTATIONS = 100


def heldout_losses(model, objective, images, seed: int, factors=None) -> Iterator[tuple[torch.Tensor, int]]:
    """The held-out objective of each batch of 512 images (a scalar on the model's device) and its row count:
    images and factors moved to the model's device, posterior means decoded, the prior drawn with a generator
    on that device seeded `seed` + the batch's first row."""
    device = next(model.parameters()).device
    for i in range(0, len(images), 512):
        x = images[i : i + 512].to(device)
        f = None if factors is None else factors[i : i + 512].to(device)
        enc = model.encode(x, sample=False)
        g = torch.Generator(device=device).manual_seed(seed + i)
        yield objective(Batch(x, f), enc, model.decode(enc.z), g)["loss"], len(x)


@torch.no_grad()
def evaluate(
    model,
    objective,
    images,
    prior,
    seed: int,
    step: int,
    factors=None,
    probes: tuple[str, ...] = ("linear", "lgbm", "mlp"),
) -> dict[str, float]:
    """Held-out objective, NMSE, MMD² to the prior, the LPS of each probe on the codes of `images` (live
    dimensions only) and `collapsed_dims`.

    The nonlinear probes need codes: with few they miss dependencies and read low (one dSprites model: LPS-lgbm
    0.23 on 2,000 codes, 0.35 on 5,000, 0.36 on 10,000; on independent codes −0.17, −0.08, −0.04), so the presets
    evaluate on 5,000 held-out images (`train.eval_n`); the final `sculpt score` is the number to report."""
    from sculptcli.metrics.collapse import collapsed_dims

    was_training = model.training
    model.eval()
    losses = [float(loss) * n for loss, n in heldout_losses(model, objective, images, seed, factors)]
    z = model.embed(images).cpu()
    lin, db = nmse(model, images)
    collapsed = collapsed_dims(z, prior)
    out: dict = {
        "heldout_loss": sum(losses) / len(images),
        "nmse_db": db,
        "mmd2_prior": mmd2_to_prior(z, prior, n=min(len(z), 2000), seed=seed),
        "prior_p": live_prior_p(z, prior, seed),
        "collapsed_dims": collapsed,
    }
    active = [i for i in range(z.shape[1]) if i not in set(collapsed)]
    t0 = time.perf_counter()
    for probe in probes:
        # LPS of the live (non-collapsed) dimensions; undefined (NaN, shown as —) with fewer than two
        out[f"lps_{probe}"] = lps(z[:, active], probe, seed=seed).mean if len(active) >= 2 else math.nan
    out["lps_seconds"] = time.perf_counter() - t0
    out["n"] = len(z)
    model.train(was_training)
    return out


def live_probes(train_spec, d: int, n: int) -> tuple[tuple[str, ...], list[str]]:
    """The LPS probes of the periodic evaluation on d-dimensional codes of n images, and a note for each left out:
    probes the config names in `train.eval_probes` always run; by default (null) linear, lgbm and mlp, leaving out
    those the score leaves out on wide codes (`lps_too_wide`)."""
    from sculptcli.metrics.builtin import lps_too_wide

    if train_spec.eval_probes is not None:
        return tuple(train_spec.eval_probes), []
    probes = ("linear", "lgbm", "mlp")
    keep, notes = [], []
    for probe in probes:
        why = lps_too_wide(probe, n, d)
        if why is None:
            keep.append(probe)
        else:
            notes.append(f"the held-out evaluations leave out the {probe} probe ({why}); name it in "
                         f"train.eval_probes to run it (train.eval_probes=[{','.join(probes)}])")  # fmt: skip
    return tuple(keep), notes


def live_prior_p(z: torch.Tensor, prior, seed: int) -> float:
    """The p-value of the MMD permutation test of up to 1,000 held-out codes against the prior (the score's test,
    smaller): p < 0.05 says the aggregate posterior is distinguishable from the declared prior. NaN for a
    conditional prior, which has no marginal to draw from without factors."""
    from sculptcli.metrics.prior_fit import prior_test

    if getattr(prior.spec, "needs_factors", False):
        return math.nan
    r = prior_test(z, prior.to("cpu"), n=LIVE_PRIOR_TEST_N, permutations=LIVE_PRIOR_TEST_PERMUTATIONS, seed=seed)
    return r["p_value"]
