"""BinaryConnectOptimizer: the reference's per-layer step scale and clip around any optimizer.

Reference (`binary_connect.py`, `compute_grads`/`clipping_scaling`, L153-182): the
optimizer (Adam there) computes `W_new` for every parameter; then each binary kernel
becomes `clip(W + W_LR_scale * (W_new - W), -H, H)`. `W_LR_scale` multiplies the
*step*, not the gradient (with Adam these differ). Biases and BatchNorm parameters get
the plain step.

Usage, one line:

    model.compile(optimizer=bclab.BinaryConnectOptimizer(keras.optimizers.Adam(1e-3)), ...)

Keras 3 call chain. TensorFlow: `train_step` -> `apply_gradients` -> `apply` (this class) ->
inner `apply` -> `update_step` per variable -> constraints. JAX: the compiled `train_step` ->
`stateless_apply(optimizer values, grads, trainable values)` -> `apply(grads)` inside a
`StatelessScope` that maps this class's `variables` (the inner optimizer's included) and the
trainable variables to those values -> the same chain; every `assign` lands in the scope, and
`stateless_apply` hands the new values back. Either way the Python below runs once, at trace time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import keras
from keras import ops
from keras.saving import deserialize_keras_object, serialize_keras_object

from bclab.core.constraints import BinaryKernelClip
from bclab.core.patching import replaced_attribute
from bclab.validation import invalid_value


@contextlib.contextmanager
def _constraints_set_aside(variables: Sequence) -> Iterator[None]:
    """Detach constraints while the inner optimizer runs; this class clips after scaling.

    Python-level and trace-time only: inside a compiled step it decides which ops
    are built, it does not run per step.
    """
    saved = [v.constraint for v in variables]
    for v in variables:
        v.constraint = None
    try:
        yield
    finally:
        for v, constraint in zip(variables, saved):
            v.constraint = constraint


# Keras optimizers whose update_step moves a variable by learning_rate * (a function of the
# gradients and the optimizer's own state, which never sees the learning rate).
_STEP_PROPORTIONAL_TO_LR = (
    keras.optimizers.SGD,
    keras.optimizers.Adam,
    keras.optimizers.Adamax,
    keras.optimizers.RMSprop,
    keras.optimizers.Adagrad,
    keras.optimizers.Nadam,
    keras.optimizers.Lion,
)


@keras.saving.register_keras_serializable(package="bclab")
class BinaryConnectOptimizer(keras.optimizers.Optimizer):
    """Wrap a Keras optimizer with the reference's step scale and clip for binary kernels.

    Binary kernels are the variables whose constraint is a `BinaryKernelClip`
    (`BinaryDense`/`BinaryConv2D` with `binary=True`). For them, after the inner
    optimizer's update: `W <- clip(W + W_LR_scale * (W_after - W), -H, H)`. Every
    other variable gets the inner optimizer's update and its own constraint.

    Args:
        inner_optimizer: any `keras.optimizers.Optimizer` (Adam, Adamax, SGD, ...).
        name: optional name.
    """

    def __init__(self, inner_optimizer: keras.optimizers.Optimizer, name: str | None = None, **kwargs):
        if not isinstance(inner_optimizer, keras.optimizers.Optimizer):
            raise invalid_value("inner_optimizer", inner_optimizer, "a keras.optimizers.Optimizer instance")
        if kwargs:
            name_given = sorted(kwargs)[0]
            raise invalid_value(
                name_given,
                kwargs[name_given],
                "no such argument here (BinaryConnectOptimizer takes `inner_optimizer` and `name`): "
                "set it on the inner optimizer",
            )
        if name is not None and not isinstance(name, str):
            raise invalid_value("name", name, "None or a string")
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = inner_optimizer

    def build(self, var_list):
        self.inner_optimizer.build(var_list)
        super().build(var_list)

    @property
    def variables(self):
        return self._variables + self.inner_optimizer.variables

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:
            trainable_variables = self.inner_optimizer._trainable_variables
        trainable_variables = list(trainable_variables)
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
            self.built = True
        kernels = [v for v in trainable_variables if isinstance(v.constraint, BinaryKernelClip)]
        rules = [v.constraint for v in kernels]
        if self.step_proportional_to_lr:
            # The inner step is lr times a factor that does not depend on lr, so scaling this
            # kernel's lr scales its step: the reference's rule with no copy of the kernel and
            # three fewer passes over it (the same value up to one rounding).
            with _constraints_set_aside(kernels), self._learning_rate_scaled(kernels, rules):
                self.inner_optimizer.apply(grads, trainable_variables)
            for variable, rule in zip(kernels, rules):
                variable.assign(ops.clip(variable, -rule.H, rule.H))
            return
        # Read before the update: TensorFlow orders this read before the inner
        # optimizer's assigns (same resource, program order), also in a tf.function.
        before = [ops.copy(v) for v in kernels]  # a snapshot: convert_to_tensor(v) returns v itself
        with _constraints_set_aside(kernels):
            self.inner_optimizer.apply(grads, trainable_variables)
        for variable, rule, old in zip(kernels, rules, before):
            variable.assign(rule.scaled_update(old, ops.convert_to_tensor(variable)))

    @property
    def step_proportional_to_lr(self) -> bool:
        """True when the inner optimizer's step for a variable is `lr * f(gradients, state)`.

        Holds for the listed Keras optimizers without weight decay, EMA or gradient
        accumulation (those use the global lr elsewhere); then `W_LR_scale` is applied by
        scaling the learning rate of binary kernels. Otherwise the literal rule runs.
        """
        inner = self.inner_optimizer
        return (
            type(inner) in _STEP_PROPORTIONAL_TO_LR
            and not inner.weight_decay
            and not inner.use_ema
            and not inner.gradient_accumulation_steps
        )

    def _learning_rate_scaled(self, kernels, rules) -> contextlib.AbstractContextManager:
        """Trace time: the inner `update_step` sees `lr * W_LR_scale` for binary kernels.

        Wraps whatever `update_step` is in place (the class's, or an instrumented step's probe,
        which then counts each real call once) and restores it on exit (`bclab.core.patching`).
        """
        inner = self.inner_optimizer
        # Keyed as Keras keys its slots (`_var_key`): the TensorFlow backend passes update_step the
        # backing tf.Variable, or under tf.distribute one replica's copy of it; JAX the Keras variable.
        scales = {inner._var_key(variable): rule.W_LR_scale for variable, rule in zip(kernels, rules)}
        original = inner.update_step

        def update_step(gradient, variable, learning_rate):
            scale = scales.get(inner._var_key(variable), 1.0)
            original(gradient, variable, learning_rate if scale == 1.0 else learning_rate * scale)

        return replaced_attribute(inner, "update_step", update_step)

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    def get_config(self):
        return {"name": self.name, "inner_optimizer": serialize_keras_object(self.inner_optimizer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = deserialize_keras_object(config.pop("inner_optimizer"), custom_objects=custom_objects)
        return cls(inner, **config)
