"""Configs: YAML files with inheritance, dotted command-line overrides and strict validation."""

from .loader import config_from_dict, dump_config, find_config, load_config, parse_overrides
from .node import Cfg, Component

__all__ = ["Cfg", "Component", "load_config", "config_from_dict", "parse_overrides", "dump_config", "find_config"]
