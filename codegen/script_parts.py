"""Source blocks that both exported training scripts share, with the studio's semantics.

The scripts are standalone (they never import the studio), so what must
behave exactly as the studio does is emitted into each of them:

* the epoch order of the training samples (studio.datasets.core.epoch_order),
  so that the studio and both scripts train on the very same batches;
* :class:`Progress`, the epoch and step counters, the best val_loss and early
  stopping (studio.training.progress.Progress), saved inside checkpoints in
  the studio's format, so that a run started in the studio resumes in a
  script and the other way round;
* the per-epoch line, and a progress bar when the output is a terminal.
"""

from __future__ import annotations

# studio.datasets.core._EPOCH_STREAM: the third word of the epoch order's seed.
EPOCH_STREAM = 0x5EED

EPOCH_ORDER = f'''
def epoch_order(n, seed, epoch):
    """The order of the n training samples in one epoch: the studio's, in both frameworks."""
    return np.random.default_rng([seed, epoch, 0x{EPOCH_STREAM:X}]).permutation(n)
'''

PROGRESS = '''
class Progress:
    """Epoch and step counters, the best val_loss and early stopping, kept as the studio keeps
    them: saved in each checkpoint, so that the studio and this script resume each other's runs."""

    def __init__(self, epochs, patience, meta=None):
        meta = meta or {}
        self.epochs, self.patience = epochs, patience
        self.epoch = int(meta.get("epoch", 0))
        self.global_step = int(meta.get("global_step", 0))
        best = meta.get("best_loss")
        self.best_loss = math.inf if best is None else float(best)
        self.best_epoch = meta.get("best_epoch")
        self.wait = int(meta.get("wait", 0))
        self.last = dict(meta.get("last", {}))

    def end_epoch(self, metrics):
        """Record an epoch; returns (improved, stop). The monitored loss is val_loss, or
        train_loss without a validation set."""
        self.epoch += 1
        self.last = dict(metrics)
        monitored = metrics.get("val_loss")
        if monitored is None:
            monitored = metrics.get("train_loss")
        improved = (
            monitored is not None
            and math.isfinite(monitored)
            and monitored < self.best_loss
        )
        if improved:
            self.best_loss, self.best_epoch, self.wait = monitored, self.epoch, 0
        else:
            self.wait += 1
        stop = (
            self.patience > 0
            and self.wait >= self.patience
            and self.epoch < self.epochs
        )
        return improved, stop

    def to_meta(self):
        return {
            "epochs": self.epochs,
            "patience": self.patience,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best_loss": None if math.isinf(self.best_loss) else self.best_loss,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_early": False,
            "last": self.last,
        }
'''

EPOCH_REPORT = '''
class EpochReport:
    """One line per epoch; while an epoch runs, a progress bar when the output is a terminal."""

    def __init__(self, epochs, batches, enabled=True):
        self.epochs, self.batches, self.enabled = epochs, batches, enabled
        self.bar = enabled and sys.stdout.isatty()

    def batch(self, epoch, step, loss):
        if self.bar:
            done = int(30 * step / self.batches)
            bar = "#" * done + "." * (30 - done)
            line = f"epoch {epoch}/{self.epochs} [{bar}] {step}/{self.batches}"
            print(f"\\r{line} loss {loss:.4f}", end="")

    def epoch(self, epoch, metrics, learning_rate, seconds):
        if not self.enabled:
            return
        figures = [f"{name} {value:.4f}" for name, value in metrics.items()]
        figures += [f"lr {learning_rate:.3g}", f"{seconds:.1f} s"]
        start = "\\r" if self.bar else ""
        print(f"{start}epoch {epoch}/{self.epochs}: " + ", ".join(figures))
'''


def block(source: str) -> list[str]:
    """A module-level source block as lines, without its leading and trailing blank lines."""
    return source.strip("\n").splitlines()
