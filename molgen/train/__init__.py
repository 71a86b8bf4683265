"""Training: the trainer loop, EMA of the weights, EDM's adaptive gradient clipping, checkpoints and data-parallel
processes.

Import the pieces from their modules (`molgen.train.loop.Trainer`, `molgen.train.cooldown`);
this package imports nothing heavy on its own.
"""
