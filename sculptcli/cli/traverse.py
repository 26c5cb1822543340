"""`sculpt traverse`: decode sweeps of one latent coordinate (or each in turn) of held-out images' codes."""

from __future__ import annotations

from pathlib import Path

import typer

from sculptcli.cli.common import console, user_errors

MAX_STEPS = 64
MAX_SEEDS = 64


def _check_png_and_rows(out: Path, seeds: int, rows: str = "images") -> None:
    """The checks every mode of `traverse` shares: a PNG output and a row count in range."""
    from sculptcli.errors import UserError

    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: the grid is written as a PNG", fix="give a file name ending in .png")
    if not 1 <= seeds <= MAX_SEEDS:
        raise UserError(f"--seeds {seeds} is out of range", fix=f"give between 1 and {MAX_SEEDS} {rows} (rows)")


def _check_args(out: Path, gif: Path | None, steps: int, seeds: int, n_data: int, dim: str):
    """Everything that can be checked before loading the checkpoint. Returns the parsed dim (None: all)."""
    from sculptcli.errors import UserError

    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: the grid is written as a PNG", fix="give a file name ending in .png")
    if gif is not None and gif.suffix.lower() != ".gif":
        raise UserError(f"--gif {gif}: the animation is written as a GIF", fix="give a file name ending in .gif")
    if not 2 <= steps <= MAX_STEPS:
        raise UserError(f"--steps {steps} is out of range", fix=f"give between 2 and {MAX_STEPS} swept values")
    if not 1 <= seeds <= MAX_SEEDS:
        raise UserError(f"--seeds {seeds} is out of range", fix=f"give between 1 and {MAX_SEEDS} images (rows)")
    if n_data < max(seeds, 2):
        raise UserError(f"--n-data {n_data} is smaller than --seeds {seeds}", fix="encode at least as many images")
    text = dim.strip().lower()
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise UserError(f"--dim '{dim}' is not a dimension", fix="give a latent dimension (0-based) or all") from None


@user_errors
def traverse(
    target: Path = typer.Argument(None, help="a checkpoint (.safetensors) or run directory (default: runs/latest)"),
    dim: str = typer.Option(
        None, "--dim", help="latent dimension to sweep (0-based), or all: one block per dimension (not with --swap)"
    ),
    out: Path = typer.Option(..., "--out", help="the grid image to write (.png)"),
    steps: int = typer.Option(11, "--steps", help="swept values (columns)"),
    seeds: int = typer.Option(8, "--seeds", help="held-out images (rows)"),
    seed: int = typer.Option(
        None, "--seed", help="choose the rows at random with this seed (default: the first held-out images)"
    ),
    range_: str = typer.Option(
        "auto",
        "--range",
        help="sweep range: prior (2nd–98th percentile of the prior), data (min–max of encoded held-out data), "
        "codebook (each value of a quantised model's codebook), fixed:LO:HI, or fit:K (mean ± K·std of the encoded "
        "data); auto: codebook for a quantised model, else prior",
    ),
    swap: bool = typer.Option(
        False,
        "--swap",
        help="instead of sweeps: decode each image with one factor subspace taken from another "
        "image (a run with factor subspaces, e.g. dsprites-xfactors)",
    ),
    compose: str = typer.Option(
        None,
        "--compose",
        help="instead of sweeps: held-out images of a context (e.g. quad1+quad2, a composition never trained on) "
        "beside images generated under it and the same draws under obs (a context-module run)",
    ),
    gif: Path = typer.Option(None, "--gif", help="also write an animation (.gif), one frame per swept value"),
    n_data: int = typer.Option(
        2000, "--n-data", help="held-out images encoded for --range data/fit and to choose rows from with --seed"
    ),
    which: str = typer.Option("last", "--checkpoint", help="in a run directory: last or best"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    trust_code: bool = typer.Option(
        False, "--trust-code", help="import the custom model code a checkpoint names (model.type: custom)"
    ),
):
    """Latent traversal grid: rows are held-out images, columns sweep one latent coordinate, the rest stay fixed."""
    import torch

    from sculptcli.errors import UserError
    from sculptcli.run import check_finite_codes, check_which, open_run
    from sculptcli.viz import traverse as tv

    if compose is not None:
        if dim is not None or swap:
            raise UserError("--compose draws a context's images, not sweeps or swaps", fix="drop --dim / --swap")
        check_which(which)
        return _compose(target, out, compose, seeds, seed, which, device, trust_code)
    if swap:
        if dim is not None:
            raise UserError("--swap draws subspace swaps, not sweeps of --dim", fix="drop --dim (or --swap)")
        check_which(which)
        return _swap(target, out, seeds, seed, which, device, trust_code)
    if dim is None:
        raise UserError("--dim is required (a latent dimension, or all)", fix="e.g. --dim 3 --out grid.png")
    k = _check_args(out, gif, steps, seeds, n_data, dim)
    spec = tv.parse_range("prior" if range_.strip().lower() == "auto" else range_)
    check_which(which)

    run = open_run(target, which, device, trust_code)
    ckpt, cfg = run.checkpoint, run.config
    quantizer = getattr(cfg.model, "quantize", None)
    if range_.strip().lower() == "auto" and quantizer is not None:
        spec = tv.parse_range("codebook")
    if spec.mode == "codebook" and quantizer is None:
        raise UserError("--range codebook needs a quantised model (model.quantize)", fix="use --range prior or data")
    d = cfg.model.latent_dim
    if k is not None and not 0 <= k < d:
        raise UserError(
            f"--dim {k} is out of range: this model has {d} latent dimensions",
            fix=f"give a dimension from 0 to {d - 1}, or all",
        )
    dims = list(range(d)) if k is None else [k]

    model, data = run.model, run.data
    available = getattr(cfg.data, "heldout", None)
    n_pool = min(n_data, available) if isinstance(available, int) else n_data
    if seeds > n_pool:
        raise UserError(f"--seeds {seeds} exceeds the {n_pool} held-out images available")
    need_pool = seed is not None or spec.mode in ("data", "fit")
    images, _ = data.heldout(n_pool if need_pool else seeds)
    pool_codes = model.embed(images).cpu() if need_pool else None
    if seed is None:
        rows = torch.arange(seeds)
        row_text = f"rows: the first {seeds} held-out images"
    else:
        rows = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:seeds]
        row_text = f"rows: {seeds} held-out images drawn with seed {seed}"
    codes = pool_codes[rows] if pool_codes is not None else model.embed(images[rows.to(images.device)]).cpu()
    check_finite_codes(codes if pool_codes is None else torch.cat([codes, pool_codes]), str(ckpt.path))
    if spec.mode == "codebook":  # every codebook value, in order: the columns are the latent's possible values
        values = model.quantizer.codebook.detach().float().sort(1).values.cpu()
        steps = values.shape[1]
    else:
        prior = run.prior
        values = tv.sweep_values(spec, steps, codes=pool_codes, prior=prior, dim=d, seed=0)

    shown = tv.traverse_images(model, codes, dims, values)
    scale = tv.display_scale(*shown.shape[-2:])
    grid, layout = tv.latent_grid(shown, padding=2, gap=tv.label_gap(values, dims, scale))
    run_dir = ckpt.path.resolve().parent
    run_name = f"{cfg.name}/{run_dir.name}" if cfg.name and cfg.name != run_dir.name else run_dir.name
    what = f"z{k}" if k is not None else f"all {d} dimensions"
    title = f"latent traversal · {run_name} (step {ckpt.step}) · {what}"
    subtitle = f"swept over the {spec.describe()} · {row_text}"
    fig, fl = tv.traversal_figure(grid, layout, dims, values, title, subtitle, scale=scale)
    frames = tv.gif_frames(grid, layout, scale) if gif is not None else None

    tv.save_figure_png(fig, out)
    console.print(f"wrote {out} ({fl.width}×{fl.height} px, {len(dims)}×{seeds} rows × {steps} columns)")
    if frames is not None:
        tv.save_gif(frames, gif)
        console.print(f"wrote {gif} ({steps} frames)")


def _swap(target, out: Path, seeds: int, seed: int | None, which: str, device: str, trust_code: bool) -> None:
    """`--swap`: rows are pairs of held-out images (a, b); columns a, b, then a with each factor subspace of b."""
    import torch

    from sculptcli.errors import UserError
    from sculptcli.run import open_run, subspace_layout
    from sculptcli.viz import traverse as tv

    _check_png_and_rows(out, seeds, "pairs")
    run = open_run(target, which, device, trust_code)
    ckpt, cfg = run.checkpoint, run.config
    layout = subspace_layout(cfg)
    if not layout:
        raise UserError(
            "this run has no factor subspaces to swap",
            where=str(ckpt.path),
            fix="--swap needs a run with an infonce term (e.g. --preset dsprites-xfactors)",
        )
    model, data = run.model, run.data
    images, _ = data.heldout(2 * seeds if seed is None else None)
    if len(images) < 2 * seeds:
        raise UserError(f"--seeds {seeds} needs {2 * seeds} held-out images, the split has {len(images)}")
    g = torch.Generator().manual_seed(seed or 0)
    order = torch.arange(len(images)) if seed is None else torch.randperm(len(images), generator=g)
    pick = order[: 2 * seeds].to(images.device)
    codes = model.embed(images[pick]).cpu()
    a, b = codes[:seeds], codes[seeds:]
    names = data.factor_names or ()
    groups = list(layout.values())
    labels = ["a", "b"] + [f"a ← b's {names[c] if c < len(names) else c}" for c in layout]
    shown = tv.swap_images(model, a, b, groups)
    scale = tv.display_scale(*shown.shape[-2:])
    grid, gl = tv.latent_grid(shown.unsqueeze(0), padding=2)
    title = f"subspace swaps · {cfg.name} (step {ckpt.step})"
    subtitle = "rows: pairs of held-out images; columns: a, b, then a decoded with one factor subspace of b"
    fig, fl = tv.labelled_grid_figure(grid, gl, labels, title, subtitle, scale)
    tv.save_figure_png(fig, out)
    console.print(f"wrote {out} ({fl.width}×{fl.height} px, {seeds} pairs × {len(labels)} columns)")


def _compose(
    target, out: Path, context: str, seeds: int, seed: int | None, which: str, device: str, trust_code: bool
) -> None:
    """`--compose`: rows are held-out images of `context` and prior draws decoded under it (and under obs)."""
    import torch

    from sculptcli.errors import UserError
    from sculptcli.metrics.context import generate
    from sculptcli.run import open_run
    from sculptcli.viz import traverse as tv

    _check_png_and_rows(out, seeds, "images")
    run = open_run(target, which, device, trust_code)
    ckpt, cfg = run.checkpoint, run.config
    data = run.data
    if not getattr(data, "contexts", None) or not hasattr(data, "heldout_context"):
        raise UserError(
            f"dataset '{cfg.data.type}' has no held-out contexts to compose",
            where=str(ckpt.path),
            fix="--compose needs a run on data with contexts (e.g. --preset quad-cm)",
        )
    known = [*data.contexts, *getattr(data, "compositions", ())]
    if context not in known:
        from sculptcli.errors import did_you_mean

        raise UserError(
            f"unknown context '{context}'.{did_you_mean(context, known)}", fix=f"choose from: {', '.join(known)}"
        )
    model, prior = run.model, run.prior
    real = data.heldout_context(context, seeds).cpu()
    draw = 0 if seed is None else seed
    fake = generate(model, prior, context, seeds, draw).cpu()
    plain = generate(model, prior, "obs", seeds, draw).cpu()
    shown = torch.stack([real, fake, plain], 1).unsqueeze(0)  # (1, rows, 3, C, H, W)
    scale = tv.display_scale(*shown.shape[-2:])
    grid, gl = tv.latent_grid(shown, padding=2)
    module = "" if getattr(model, "concepts", None) else ", no module"
    labels = ["held-out", "generated", "as obs"]  # short: the figure is three images wide
    title = f"{context}"
    subtitle = f"step {ckpt.step}{module} · draws seed {draw}"
    fig, fl = tv.labelled_grid_figure(grid, gl, labels, title, subtitle, scale)
    tv.save_figure_png(fig, out)
    console.print(
        f"wrote {out} ({fl.width}×{fl.height} px; {seeds} rows: held-out {context} images, prior draws decoded under "
        f"{context}, the same draws under obs; {cfg.name}, step {ckpt.step}{module})"
    )
