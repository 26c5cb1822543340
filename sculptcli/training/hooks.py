"""What hangs on the training loop: each hook is called at the loop's moments (start, after a step, a log record,
a held-out evaluation, a message, the end); every method does nothing unless a hook overrides it.

The loop's own work — step, log, evaluate, save — stays in `trainer.py`, top to bottom. Here: the CPU share between
runs on one machine, test-only fault injection, Ctrl-C/SIGTERM, start-up health warnings, the terminal report
and the run's curves.png.
Hooks run in list order: the report starts before health speaks."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

import torch

from sculptcli import faults
from sculptcli.training.health import input_scale_warning

if TYPE_CHECKING:
    from sculptcli.training.cpushare import CpuShare
    from sculptcli.training.report import Reporter
    from sculptcli.training.trainer import Loop


class Hook:
    def on_start(self, loop: Loop) -> None: ...
    def after_step(self, loop: Loop) -> None: ...
    def on_log(self, loop: Loop, record: dict[str, Any]) -> None: ...
    def on_eval(self, loop: Loop, record: dict[str, Any]) -> None: ...
    def on_message(self, loop: Loop, text: str) -> None: ...
    def on_end(self, loop: Loop) -> None: ...


class Hooks(Hook):
    """Several hooks called in order; `on_end` reaches every hook even when one fails."""

    def __init__(self, hooks: list[Hook]):
        self.hooks = hooks

    def on_start(self, loop):
        for h in self.hooks:
            h.on_start(loop)

    def after_step(self, loop):
        for h in self.hooks:
            h.after_step(loop)

    def on_log(self, loop, record):
        for h in self.hooks:
            h.on_log(loop, record)

    def on_eval(self, loop, record):
        for h in self.hooks:
            h.on_eval(loop, record)

    def on_message(self, loop, text):
        for h in self.hooks:
            h.on_message(loop, text)

    def on_end(self, loop):
        errors = []
        for h in self.hooks:
            try:
                h.on_end(loop)
            except Exception as e:  # noqa: BLE001 - the others still close; the first error is raised after
                errors.append(e)
        if errors:
            raise errors[0]


class ShareCpus(Hook):
    """Runs on one machine share its CPUs: threads = CPUs / live runs, checked about once a second."""

    def __init__(self, share: CpuShare):
        self.share = share

    def after_step(self, loop):
        if self.share.due() and (threads := self.share.threads()) != torch.get_num_threads():
            torch.set_num_threads(threads)  # a run started or ended beside this one


class InjectFaults(Hook):
    """Test-only fault injection (`SCULPT_FAULT`): nothing unless that variable is set."""

    def after_step(self, loop):
        faults.at_step(loop.step)


class StopOnSignal(Hook):
    """Ctrl-C or SIGTERM (a scheduler's notice): the first finishes the current step, saves and stops (the loop
    watches `loop.stop`); a second Ctrl-C aborts at once. Handlers only in the main thread, restored at the end."""

    def __init__(self):
        self.previous: dict = {}

    def on_start(self, loop):
        def on_signal(signum, frame):
            if loop.stop.is_set() and signum == signal.SIGINT:
                raise KeyboardInterrupt
            loop.stop.set()

        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_end(self, loop):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}


class Health(Hook):
    """Warnings a user should see at the start: a degenerate input scale, emulated bf16. (Each held-out
    evaluation's warnings — collapse, a stalled MMD² — are data: the loop writes them into the record.)"""

    def on_start(self, loop):
        if not loop.dist.main or loop.step:
            return
        cfg, built = loop.cfg, loop.built
        standardised = getattr(cfg.model, "input_norm", "none") == "data"
        scale = input_scale_warning(built.data.train_batch(0, built.batch_size).images, standardised)
        if scale:
            loop.message(f"warning: {scale}")
        from sculptcli.precision import cpu_has_bf16

        if built.use_bf16 and loop.device.type == "cpu" and not cpu_has_bf16():
            loop.message(
                "warning: train.precision=bf16 on a CPU without bf16 instructions: autocast emulates it, about 15× "
                "slower than fp32; set train.precision=auto (fp32 on this CPU)"
            )



class Report(Hook):
    """The terminal: the live dashboard (or plain lines) of the main process."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter

    def on_start(self, loop):
        built = loop.built
        self.reporter.start(loop.cfg, loop.run_dir, loop.device, built.total, loop.step, built.use_bf16)

    def on_log(self, loop, record):
        self.reporter.update(record)

    def on_eval(self, loop, record):
        self.reporter.evaluation(record)

    def on_message(self, loop, text):
        self.reporter.message(text)

    def on_end(self, loop):
        self.reporter.stop()


class Curves(Hook):
    """`curves.png` in the run directory, redrawn from metrics.jsonl at each held-out evaluation (about half a
    second); a plotting failure only warns."""

    def on_eval(self, loop, record):
        from sculptcli.viz.curves import redraw_curves

        redraw_curves(loop.run_dir, loop.message)
