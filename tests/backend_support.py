"""Gradients and compiled functions on the active Keras backend, for the golden tests of `bclab.core`.

test_binarize, test_layers and test_optimizers run on TensorFlow in the main test process and on JAX
in a subprocess (`tests/test_jax_backend.py`); one test body checks both through these helpers:

- `value_and_gradients`: `tf.GradientTape` on TensorFlow; on JAX `jax.value_and_grad` of the
  variables' values, read through a `keras.StatelessScope` as Keras's JAX trainer reads them
  (`stateless_call`).
- `Compiled`: `tf.function` on TensorFlow; on JAX `jax.jit`, with the Keras variables the function
  assigns (a `SeedGenerator`'s `state`) passed in and handed back, as the JAX trainer threads a
  layer's non-trainable state through its compiled step.

A test of something only one backend has is marked `tensorflow_only` or `jax_only` (conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

BACKEND = keras.backend.backend()


def to_numpy(tree: Any) -> Any:
    """Every tensor of a (nested) tuple or list as a NumPy array; None stays None."""
    if tree is None:
        return None
    if isinstance(tree, (tuple, list)):
        return type(tree)(to_numpy(item) for item in tree)
    return keras.ops.convert_to_numpy(tree)


def value_and_gradients(fn: Callable[[], tuple[Any, Any]], variables: Sequence[keras.Variable]):
    """`fn()` returns `(loss, aux)`; gives `(aux, [d loss / d v for v in variables])` as NumPy.

    A variable the loss does not depend on gets None on TensorFlow and zeros on JAX (`jax.grad`
    differentiates every input).
    """
    variables = list(variables)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss, aux = fn()
        return to_numpy(aux), to_numpy(tape.gradient(loss, variables))
    if BACKEND == "jax":
        import jax

        def pure(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn()

        (_, aux), grads = jax.value_and_grad(pure, has_aux=True)([v.value for v in variables])
        return to_numpy(aux), to_numpy(list(grads))
    raise NotImplementedError(f"no gradient helper for the {BACKEND!r} backend")


class Compiled:
    """`fn` compiled for the active backend; `traces` counts how often its Python body ran.

    Args:
        fn: a function of tensors.
        state: the Keras variables `fn` assigns (e.g. `seed_generator.state`): on JAX their values
            go into the compiled function and the new values come back and are assigned after
            each call (without this a compiled draw would repeat its first sample).
    """

    def __init__(self, fn: Callable[..., Any], state: Sequence[keras.Variable] = ()):
        self.traces = 0
        self._state = list(state)

        def counted(*args):
            self.traces += 1
            return fn(*args)

        if BACKEND == "tensorflow":
            import tensorflow as tf

            self._call = tf.function(counted)
        elif BACKEND == "jax":
            import jax

            def pure(values, *args):
                with keras.StatelessScope(state_mapping=list(zip(self._state, values))) as scope:
                    out = counted(*args)
                return out, [scope.get_current_value(v) for v in self._state]

            jitted = jax.jit(pure)

            def call(*args):
                out, values = jitted([v.value for v in self._state], *args)
                for variable, value in zip(self._state, values):
                    if value is not None:  # None: not assigned in this call
                        variable.assign(value)
                return out

            self._call = call
        else:
            raise NotImplementedError(f"no compile helper for the {BACKEND!r} backend")

    def __call__(self, *args):
        return self._call(*args)


def stateless_step(optimizer: keras.optimizers.Optimizer, pairs) -> None:
    """One optimizer step the way Keras's JAX trainer takes it: `stateless_apply` on the values, compiled.

    `pairs` are `(gradient, variable)`; the variables and the optimizer's own variables get the new
    values afterwards, as the trainer writes its state back after `fit`.
    """
    grads = [keras.ops.convert_to_tensor(np.asarray(g, np.float32)) for g, _ in pairs]
    variables = [v for _, v in pairs]
    if not optimizer.built:
        optimizer.build(variables)
    apply = Compiled(lambda opt_values, values, grads: optimizer.stateless_apply(opt_values, grads, values))
    values = [keras.ops.convert_to_tensor(v) for v in variables]
    new_values, new_opt_values = apply([keras.ops.convert_to_tensor(v) for v in optimizer.variables], values, grads)
    for variable, value in zip(variables, new_values):
        variable.assign(value)
    for variable, value in zip(optimizer.variables, new_opt_values):
        variable.assign(value)
