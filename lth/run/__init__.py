"""The edge: Lightning, Hydra and W&B around the lottery (module, callback, checkpoints, job directory,
loggers, console, config checks, the job itself)."""
