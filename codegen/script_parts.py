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


READ_DATA = '''
def read_data(path):
    """x, y and whether to standardise x, read by the studio's rules from an .npz (x, y), a CSV
    table with a header row (features, then the target last), MNIST-format IDX images (their
    labels file beside them), or a folder with one sub-folder of images per class."""
    path = Path(path)
    if not path.exists():
        raise SystemExit(f"--data: there is no file or folder {path}")
    if path.is_dir():
        return read_image_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path) as data:  # arrays only: pickled objects are refused
            x, y = data["x"], data["y"] if "y" in data.files else None
        if x.dtype == np.uint8:  # 8-bit pixels
            return x.astype("float32") / 255.0, y, False
        return x, y, x.ndim == 2 and x.dtype.kind == "f"
    if suffix in (".csv", ".tsv", ".txt"):
        return read_csv(path)
    return read_idx(path)


def class_ids(labels):
    """Targets as read from text: strings, or at most 32 distinct whole numbers, are classes
    (ids in sorted order, numerically for numbers); other numbers are regression targets."""
    names = sorted(set(labels))
    whole = all(label.lstrip("+-").isdigit() for label in names)
    if whole and len(names) <= 32:
        names.sort(key=int)
    else:
        try:
            return np.array([float(label) for label in labels], "float32")
        except ValueError:
            pass
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[label] for label in labels], "int64")


def read_csv(path):
    text = path.read_text(encoding="utf-8-sig")
    first = text.splitlines()[0] if text else ""
    delimiter = max(",;\\t", key=first.count)
    rows = [row for row in csv.reader(text.splitlines(), delimiter=delimiter) if row]
    if len(rows) < 2:
        raise SystemExit(f"--data {path.name}: expected a header row and data rows")
    try:
        features = [[float(value) for value in row[:-1]] for row in rows[1:]]
    except ValueError as error:
        raise SystemExit(f"--data {path.name}: a feature: {error}") from None
    x = np.array(features, "float32")
    return x, class_ids([row[-1].strip() for row in rows[1:]]), True


def read_idx(path):
    """IDX images (N, H, W) of 8-bit pixels, and the labels file whose name says labels-idx1."""
    labels = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
    if labels == path or not labels.exists():
        raise SystemExit(f"--data {path.name}: expected IDX images and a labels file")
    x = read_idx_array(path).astype("float32") / 255.0
    return x[..., np.newaxis], read_idx_array(labels).astype("int64"), False


def read_idx_array(path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as file:
        data = file.read()
    dims = data[3]
    shape = struct.unpack(f">{dims}I", data[4 : 4 + 4 * dims])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def read_image_folder(folder):
    """Images in [0, 1] at the first one's size, grey unless one has colour; the classes are the
    sorted sub-folder names."""
    from PIL import Image  # Pillow, for image folders only

    suffixes = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
    classes = [p for p in sorted(folder.iterdir()) if p.is_dir() and p.name[0] != "."]
    files = [
        (label, file)
        for label, directory in enumerate(classes)
        for file in sorted(directory.iterdir())
        if file.suffix.lower() in suffixes and not file.name.startswith(".")
    ]
    if len(classes) < 2 or not files:
        raise SystemExit(f"--data {folder.name}: expected a folder of images per class")
    modes, sizes = [], []
    for _, file in files:  # headers first: the size, and whether any image has colour
        with Image.open(file) as image:
            modes.append(image.mode)
            sizes.append(image.size)
    grey = all(mode in ("1", "L", "LA", "I", "F") for mode in modes)
    pixels = []
    for _, file in files:
        with Image.open(file) as image:
            image = image.convert("L" if grey else "RGB")
            pixels.append(np.asarray(image.resize(sizes[0], Image.BILINEAR), "float32"))
    x = np.stack(pixels) / 255.0
    y = np.array([label for label, _ in files], "int64")
    return (x[..., np.newaxis] if grey else x), y, False
'''

TENSORBOARD_SCALARS = '''
def tensorboard_scalars(metrics, learning_rate):
    """The studio's TensorBoard tags: loss, accuracy, val_loss, val_accuracy, learning_rate."""
    tags = {"train_loss": "loss", "train_accuracy": "accuracy"}
    tags.update(val_loss="val_loss", val_accuracy="val_accuracy")
    scalars = {tags[key]: value for key, value in metrics.items() if key in tags}
    return {**scalars, "learning_rate": learning_rate}
'''

TORCH_PRECISION = '''
class Precision:
    """--precision: torch.autocast in bf16 or fp16 (fp16 with a GradScaler, CUDA only), as the
    studio trains; fp32 changes nothing."""

    def __init__(self, name="fp32", device=None):
        device = device or torch.device("cpu")
        if name == "fp16" and device.type != "cuda":
            raise SystemExit(
                f"--precision fp16 needs a CUDA GPU, and this run is on {device}: "
                "use bf16 or fp32"
            )
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(name)
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler("cuda") if name == "fp16" else None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def step(self, loss, optimizer, parameters, clip_norm):
        """The backward pass (loss-scaled in fp16), clipping if asked, the optimizer step."""
        if self.scaler is None:
            loss.backward()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(optimizer)  # clip the true gradients
        if clip_norm is not None:
            clip_gradients(parameters, clip_norm)
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()


FP32 = Precision()
'''
