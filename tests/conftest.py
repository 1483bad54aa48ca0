import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def tiny_toy():
    """A ring8 config that trains in about a second."""
    import gankit

    cfg = gankit.preset("ring8")
    cfg.train.steps = 40
    cfg.g.width = cfg.d.width = 32
    cfg.data.batch_size = 64
    cfg.log.every = 10
    cfg.log.sample_every = 20
    cfg.log.checkpoint_every = 20
    cfg.log.n_samples = 256
    cfg.log.progress = False
    return cfg


@pytest.fixture
def tiny_digits():
    """A digits config at 8x8 that trains in a few seconds."""
    import gankit

    cfg = gankit.preset("digits")
    cfg.data.size = 8
    cfg.g.width = cfg.d.width = 8
    cfg.data.batch_size = 16
    cfg.train.steps = 6
    cfg.log.every = 2
    cfg.log.sample_every = 3
    cfg.log.checkpoint_every = 3
    cfg.log.n_samples = 16
    cfg.log.progress = False
    return cfg
