"""Terminal reporters for a training run: a rich live dashboard on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time

import torch
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 24) -> str:
    vals = [v for v in values[-width:] if v == v]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = hi - lo or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) / span * (len(SPARK) - 1) + 0.5))] for v in vals)


def trend(values: list[float]) -> str:
    if len(values) < 2:
        return ""
    d = values[-1] - values[-2]
    return "↓" if d < -1e-3 else "↑" if d > 1e-3 else "→"


def fmt(v, digits: int = 3) -> str:
    """A live metric for the terminal: '—' when it is missing or undefined (NaN)."""
    return "—" if v is None or v != v else f"{v:.{digits}f}"


STANDARD = ("step", "loss", "recon", "div", "img_per_s", "time")


def prior_p_text(p) -> str:
    """The live prior test's p-value, red when the aggregate is distinguishable from the prior (p < 0.05)."""
    text = fmt(p)
    return f"[red]{text}[/]" if p is not None and p == p and p < 0.05 else text


def term_text(record: dict) -> str:
    """The extra objective terms of a log record (Aux-VAE's correlations, InfoNCE, ...) as 'name value' pairs."""
    return "  ".join(f"{k} {v:.4f}" for k, v in record.items() if k not in STANDARD)


def describe_run(cfg, device, use_bf16: bool) -> dict[str, str]:
    div = cfg.objective.divergence
    n = torch.get_num_threads()
    return {
        "data": cfg.data.type,
        "model": cfg.model.describe(),
        "objective": f"{cfg.objective.recon}({cfg.objective.reduction}) + {div.weight:g}·{div.type}",
        "prior": cfg.prior.describe(),
        "device": f"{device.type} {'bf16' if use_bf16 else 'fp32'} · {n} thread{'s' if n != 1 else ''}",
        "budget": f"{cfg.budget or 'as configured'} · batch {cfg.train.batch_size} · lr {cfg.train.lr:g}",
    }


class Reporter:
    """Receives a run's progress; the base class is silent (used by tests and the library API)."""

    def start(self, cfg, run_dir, device, total: int, step: int, use_bf16: bool) -> None: ...
    def update(self, record: dict) -> None: ...
    def evaluation(self, record: dict) -> None: ...
    def message(self, text: str) -> None: ...
    def stop(self) -> None: ...


class PlainReporter(Reporter):
    """One line per log step and per evaluation, for logs and pipes."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def start(self, cfg, run_dir, device, total, step, use_bf16):
        self.total, self.t0, self.step0 = total, time.perf_counter(), step
        self._print(f"sculpt train: {cfg.name} -> {run_dir}")
        for k, v in describe_run(cfg, device, use_bf16).items():
            self._print(f"  {k:9s} {v}")
        if step:
            self._print(f"  resuming at step {step}/{total}")

    def update(self, r):
        done = r["step"] - self.step0
        rate = done / max(time.perf_counter() - self.t0, 1e-9)
        eta = (self.total - r["step"]) / rate if rate > 0 else float("nan")
        terms = term_text(r)
        self._print(
            f"step {r['step']:>7d}/{self.total}  loss {r['loss']:.5f}  recon {r['recon']:.5f}  "
            f"div {r['div']:.5f}  {r['img_per_s']:.0f} img/s  eta {eta:.0f}s" + (f"  {terms}" if terms else "")
        )

    def evaluation(self, r):
        self._print(
            f"eval {r['step']:>7d}  held-out loss {r['heldout_loss']:.5f}  NMSE {r['nmse_db']:.2f} dB  "
            f"LPS-lgbm {fmt(r.get('lps_lgbm'))}  LPS-mlp {fmt(r.get('lps_mlp'))}  "
            f"LPS-linear {fmt(r.get('lps_linear'))}  MMD² prior {r['mmd2_prior']:.4f}  "
            f"prior test p {fmt(r.get('prior_p'))}"
        )
        for w in r.get("warnings", []):
            self._print(f"warning: {w}")

    def message(self, text):
        self._print(text)


class RichDashboard(Reporter):
    """A live panel: progress with ETA, loss parts, throughput, and held-out LPS/NMSE with their trends."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self.last: dict = {}
        self.evals: list[dict] = []
        self.live: Live | None = None

    def start(self, cfg, run_dir, device, total, step, use_bf16):
        self.info = describe_run(cfg, device, use_bf16)
        self.title = f"sculpt train · {cfg.name} → {run_dir}"
        self.progress = Progress(
            TextColumn("[bold]steps"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        )
        self.task = self.progress.add_task("train", total=total, completed=step)
        self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
        self.live.start()

    def _render(self):
        info = Table.grid(padding=(0, 2))
        for k, v in self.info.items():
            info.add_row(f"[dim]{k}", v)
        stats = Table(show_edge=False, box=None, pad_edge=False)
        for col in ("loss", "recon", "divergence", "img/s"):
            stats.add_column(col, justify="right")
        if self.last:
            r = self.last
            stats.add_row(f"{r['loss']:.5f}", f"{r['recon']:.5f}", f"{r['div']:.5f}", f"{r['img_per_s']:.0f}")
        ev = Table(show_edge=False, box=None, pad_edge=False)
        for col in ("held-out", "LPS-lgbm", "trend", "LPS-mlp", "LPS-linear", "NMSE dB", "MMD² prior", "prior p"):
            ev.add_column(col, justify="right")
        parts = [Group(info, "", self.progress, "", stats, "", ev)]
        if self.last and term_text(self.last):
            parts.append(f"[dim]terms[/] {term_text(self.last)}")
        if self.evals:
            e = self.evals[-1]
            lgbm = [float("nan") if x.get("lps_lgbm") is None else x["lps_lgbm"] for x in self.evals]
            ev.add_row(
                f"step {e['step']} · n={e.get('n', '?')}",
                f"[bold]{fmt(e.get('lps_lgbm'))}[/] {trend(lgbm)}",
                sparkline(lgbm),
                fmt(e.get("lps_mlp")),
                fmt(e.get("lps_linear")),
                f"{e['nmse_db']:.2f}",
                f"{e['mmd2_prior']:.4f}",
                prior_p_text(e.get("prior_p")),
            )
            for w in e.get("warnings", []):
                parts.append(f"[bold red]⚠ {w}[/]")
        else:
            ev.add_row("—", "—", "", "—", "—", "—", "—", "—")
        return Panel(Group(*parts), title=self.title, border_style="cyan")

    def _refresh(self):
        if self.live:
            self.live.update(self._render())

    def update(self, r):
        self.last = r
        self.progress.update(self.task, completed=r["step"])
        self._refresh()

    def evaluation(self, r):
        self.evals.append(r)
        self._refresh()

    def message(self, text):
        self.console.print(text)

    def stop(self):
        if self.live:
            self._refresh()
            self.live.stop()
            self.live = None


def make_reporter(quiet: bool = False) -> Reporter:
    if quiet:
        return Reporter()
    return RichDashboard() if sys.stdout.isatty() else PlainReporter()
