"""Training: the paper's models, the instrumented step, the Trainer and the background runner.

The one tier that uses TensorFlow directly.
"""
