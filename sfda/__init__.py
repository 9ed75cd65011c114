"""sfda: source-free domain adaptation (SHOT and friends) with Natural Selection sample weighting."""

__version__ = "0.1.0"
