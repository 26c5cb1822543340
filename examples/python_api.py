"""sculpt from Python: a declared prior and the paper's MMD loss in your own training loop, LPS and scores of any
codes, then a (tiny) sculpt run trained, reopened, encoded and decoded.

    python examples/python_api.py [OUT_DIR]      # about half a minute on a laptop CPU

Everything here is the public API of `import sculptcli as sculpt`; budgets are tiny so it runs anywhere."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

import sculptcli as sculpt


def own_training_loop(prior: sculpt.Prior, steps: int = 30) -> torch.Tensor:
    """A toy autoencoder of 16-D vectors whose codes are pulled toward `prior` by sculpt's MMD loss."""
    torch.manual_seed(0)
    d = prior.dim
    x = torch.randn(512, 16)
    encoder, decoder = nn.Linear(16, d), nn.Linear(d, 16)
    mmd = sculpt.MMDLoss(prior)  # the paper's kernel (RBFs at 0.5, 1, 2 × median) and biased estimator
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-2)
    for step in range(steps):
        batch = x[torch.randint(0, len(x), (128,))]
        z = encoder(batch)
        recon = ((decoder(z) - batch) ** 2).mean()
        loss = recon + 0.3 * mmd(z)  # differentiable in z
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            print(f"step {step:3d}  recon {recon.item():.3f}  mmd² {mmd(z).item():.4f}")
    with torch.no_grad():
        return encoder(x)


def main(out: Path) -> None:
    prior = sculpt.prior("dsprites-hybrid")  # a packaged prior; also a YAML path or {"type": "gaussian"} + dim=
    print(prior, prior.sample(1024, seed=0).shape)

    z = own_training_loop(prior)
    r = sculpt.lps(z, probe="linear")  # LightGBM by default; linear is quick
    print(f"LPS (linear) {r.score:.3f}, per dim {[round(v, 3) for v in r.per_dim]}")
    s = sculpt.score(z, metrics="basic", probes=["linear"], prior=prior)  # the keys of `sculpt score --latents --json`
    print("scores:", {k: s[k] for k in ("mmd2_prior", "cov_ratio") if k in s})

    tiny = {
        "train.steps": 20, "train.epochs": None, "train.batch_size": 32, "train.eval_every": 20,
        "train.save_every": 20, "train.log_every": 10, "train.eval_n": 200, "train.eval_probes": ["linear"],
        "data.heldout": 300, "model.layers": 3, "model.width": 8, "model.fc_hidden": 32,
        "objective.divergence.prior_n": 64, "score.n": 200, "score.probes": ["linear"], "score.metrics": ["basic"],
    }  # fmt: skip
    run = sculpt.train("dsprites-mmd-gaussian", overrides=tiny, out=out / "run", device="cpu")
    run = sculpt.open_run(out / "run")  # a run directory or a .safetensors checkpoint
    images, _ = run.heldout(8)
    codes = run.encode(images)
    pixels = run.decode(codes)  # pixels in [0, 1]
    print(f"{run}: codes {tuple(codes.shape)}, decoded {tuple(pixels.shape)} in [{pixels.min():.2f}, "
          f"{pixels.max():.2f}], linear LPS {run.scores['lps']['linear']:.3f}")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
