"""The devices a run trains on: one, or N data-parallel replicas under `tf.distribute`.

`strategy_for(N)`: N = 1 is TensorFlow's default strategy (no replicas, no copies). N > 1 is a
`MirroredStrategy` over N GPUs when TensorFlow sees that many, else over N logical CPU devices
split from the one physical CPU, so that the distributed path runs (and is tested) on any
machine. Splitting must happen before TensorFlow starts its runtime; once it has started, asking
for more CPU devices than it has is an error that says so. GPUs are never split.

Under a multi-worker cluster (`TF_CONFIG` naming several workers) the strategy is
`MultiWorkerMirroredStrategy` over each worker's devices: see the README's "Scaling out".
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from bclab.validation import check_positive_int, invalid_value

__all__ = ["is_multi_worker", "replica_devices", "strategy_for"]


def is_multi_worker() -> bool:
    """True when `TF_CONFIG` describes a cluster of more than one worker."""
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        return False
    try:
        cluster = json.loads(text).get("cluster", {})
    except (json.JSONDecodeError, AttributeError) as error:
        raise invalid_value("TF_CONFIG", text, f"a JSON object with a 'cluster' entry ({error})") from None
    return len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1


def replica_devices(devices: int) -> list[str]:
    """The names of `devices` devices to mirror over: GPUs if there are enough, else CPUs (split)."""
    devices = check_positive_int("devices", devices)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) >= devices:
        return [d.name for d in gpus[:devices]]
    cpus = tf.config.list_logical_devices("CPU")  # starts the runtime: split before this if needed
    if len(cpus) < devices:
        raise invalid_value(
            "devices",
            devices,
            f"at most {max(len(gpus), len(cpus))} here: TensorFlow has started with {len(gpus)} GPU(s) and "
            f"{len(cpus)} CPU device(s), and the CPU can be split into {devices} only before it starts "
            "(start a new process, and ask for the devices before anything else runs TensorFlow)",
        )
    return [d.name for d in cpus[:devices]]


def split_cpu(devices: int) -> None:
    """Make the physical CPU `devices` logical devices, if TensorFlow has not started and sees
    fewer GPUs than `devices`; otherwise leave everything as it is."""
    if devices <= 1 or len(tf.config.list_physical_devices("GPU")) >= devices:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        if len(tf.config.get_logical_device_configuration(cpu) or []) < devices:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    except RuntimeError:
        pass  # the runtime has started: `replica_devices` reports what it has


_STRATEGIES: dict[tuple[str, ...], tf.distribute.Strategy] = {}


def strategy_for(devices: int) -> tf.distribute.Strategy:
    """The distribution strategy for `devices` replicas (module docstring); one per set of
    devices and process, reused by every run (strategies made anew for each run would share
    TensorFlow's collective-op keys and abort each other's all-reduces)."""
    devices = check_positive_int("devices", devices)
    if is_multi_worker():
        return _STRATEGIES.setdefault(("multi-worker",), tf.distribute.MultiWorkerMirroredStrategy())
    if devices == 1:
        return tf.distribute.get_strategy()
    split_cpu(devices)
    names = tuple(replica_devices(devices))
    if names not in _STRATEGIES:
        _STRATEGIES[names] = tf.distribute.MirroredStrategy(list(names))
    return _STRATEGIES[names]
