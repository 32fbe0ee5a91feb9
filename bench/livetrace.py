"""The livetrace group of `throughput.py`: `model.fit` with `bclab.LiveTrace` against plain `model.fit`.

Three copies of one model (same seed, same batches, same `tf.data` pipeline): plain `fit`,
`fit` with `LiveTrace(level="scalars", show=False)` and with `LiveTrace(level="full",
show=False)`, interleaved as every group (`timing.measure`). Each contender keeps one callback
for all its repetitions, so its trace grows across them as in one long `fit`.

What is timed: the steady steps of each `fit` call. `LiveTrace` installs its probe on the model's
`train_step` when a `fit` starts, so Keras traces the step again in that call's first batch (a
second or more for the paper MLP), a cost a user's one long `fit` pays once. Every contender
therefore runs `n + 1` steps per repetition and is timed from the start of the second batch to
the end of training (`SteadyClock`); the first batch's time is kept apart and printed as a note.
"""

from __future__ import annotations

import time

import _common
from contenders import StepContender, mnist_batches
from timing import measure, summarize

PLAIN = "model.fit"
SCALARS = "model.fit + LiveTrace(level='scalars')"
FULL = "model.fit + LiveTrace(level='full')"
RATIOS = {"livetrace scalars/fit": (SCALARS, PLAIN), "livetrace full/fit": (FULL, PLAIN)}


def steady_clock():
    """A Keras callback timing `fit` from the start of its second batch to the end of training;
    `first_batch` holds the first batch's seconds (with a new train function: its tracing)."""
    import keras

    class SteadyClock(keras.callbacks.Callback):
        seconds = first_batch = float("nan")

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self.first_start = time.perf_counter()
            elif batch == 1:
                self.start = time.perf_counter()
                self.first_batch = self.start - self.first_start

        def on_train_end(self, logs=None):
            self.seconds = time.perf_counter() - self.start

    return SteadyClock()


class FitContender(StepContender):
    """`model.fit` on the shared pipeline with `callback` (or none), timed by `steady_clock`."""

    def __init__(self, name, model, optimizer, batches, callback=None):
        super().__init__(name, model, optimizer, batches, path="fit")
        self.callback = callback
        self.first_batches: list[float] = []

    def run(self, n: int) -> float:
        clock = steady_clock()  # first: LiveTrace's own `on_train_end` is not a step
        callbacks = [clock] + ([self.callback] if self.callback is not None else [])
        self.model.fit(self.dataset, steps_per_epoch=n + 1, epochs=1, verbose=0, callbacks=callbacks)
        self.first_batches.append(clock.first_batch)
        return clock.seconds


def run_livetrace(args, dataset):
    """The group's result (`timing.summarize`), on the paper MLP shape (`--mlp-size`) through `model.fit`."""
    import keras

    from bclab import BinaryConnectOptimizer, LiveTrace, RunConfig, build_model
    from bclab.train.models import make_optimizer

    config = RunConfig.recipe("mnist", size=args.mlp_size, mode="deterministic")
    batches = mnist_batches(dataset, config.batch_size, args.n_batches)
    contenders = []
    for name, level in ((PLAIN, None), (SCALARS, "scalars"), (FULL, "full")):
        keras.utils.set_random_seed(config.seed)
        model = build_model(config, dataset.image_shape, dataset.num_classes)
        callback = None if level is None else LiveTrace(level, show=False)
        optimizer = BinaryConnectOptimizer(make_optimizer(config))
        contenders.append(FitContender(name, model, optimizer, batches, callback))
    rates = measure(contenders, args.steps, args.reps, args.warmup)
    units = config.units
    description = (
        f"MNIST MLP 784-{units}-{units}-{units}-10 + BatchNorm, bclab deterministic + BinaryConnectOptimizer(Adam), "
        f"batch {config.batch_size}, model.fit, {args.steps} steps x {args.reps} reps timed from each fit's "
        f"second batch, data={dataset.name}"
    )
    notes = [
        "first batch of each fit (s, median; LiveTrace traces the step again there): "
        + ", ".join(f"{c.name} {_common.median(c.first_batches):.3g}" for c in contenders)
    ]
    traced = contenders[-1].callback.trace
    notes.append(f"trace of the full contender: {len(traced)} records, {traced.memory_bytes() / 2**20:.1f} MiB")
    return summarize("livetrace", rates, RATIOS, {"description": description, "size": args.mlp_size, "notes": notes})
