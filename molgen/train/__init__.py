"""Training: the trainer (`molgen.train.loop.Trainer`) and its pieces, each in its module: the random-number
scheme (randomness), the epoch position (cursor), each step's batches (batches), one optimisation step (step), EMA
of the weights (ema), EDM's adaptive gradient clipping (clipping), the learning-rate schedule (schedule), the
validation NLL and sample metrics (periodic), log.csv and messages (runlog), stop signals (signals), checkpoint
state (state), data-parallel processes (distributed) and the cooldown branch (cooldown).

Import the pieces from their modules; this package imports nothing heavy on its own.
"""
