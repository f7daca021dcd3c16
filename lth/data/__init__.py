"""LightningDataModules that hold every dataset in memory as tensors: downloads, idx files, vision
datasets, MNIST-1D, digits and the teacher-student task, batches drawn by indexing.

Science, beside models, analysis and lottery: it imports only the ground floor of lth (errors, seeds,
files), torch and Lightning (its DataModules are Lightning's), never another package of lth, Hydra or W&B.
"""
