"""The QM9 data set with EDM's split, its on-disk cache, exports and statistics (the batch type is `molgen.batch`)."""
