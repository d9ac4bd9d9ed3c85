"""PARD draft training: config, COD, records and the grain pipeline, the jitted step, checkpoints, the
trainer, export, and synthetic data."""
