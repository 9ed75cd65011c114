"""Sub-commands of ``sfda``; each module defines ``register(subparsers)``."""

ORDER = ["demo", "train", "lists", "data", "table", "plot", "listing", "config"]
