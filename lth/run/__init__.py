"""The edge: Lightning, Hydra and W&B around the lottery (module, callback, checkpoints, job directory,
loggers, console, config checks, the job itself).

It may import the science beneath it (lottery, models, data, analysis) and the ground floor; never the
entry points above it (train, analyze, report, bench). ``checks`` (the config checks) stays torch-free.
"""
