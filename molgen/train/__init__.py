"""Training: the trainer loop, EMA of the weights, EDM's adaptive gradient clipping, checkpoints and data-parallel
processes.

Import the pieces from their modules (`molgen.train.loop.Trainer`, `molgen.train.checkpoint.load_checkpoint`);
this package imports nothing heavy on its own.
"""
