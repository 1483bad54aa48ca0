"""gankit: train, diagnose, measure and use generative adversarial networks.

    import gankit
    summary = gankit.train(gankit.preset("digits"), "runs/digits")
    G = gankit.load("runs/digits")
    images = G.sample(16, seed=0)
"""

__version__ = "0.1.0"

from gankit.config import Config, preset
from gankit.tasks.gan import Generator, info, load, train

__all__ = ["Config", "Generator", "__version__", "info", "load", "preset", "train"]
