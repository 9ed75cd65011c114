"""Configs: YAML files with inheritance, dotted command-line overrides and strict validation."""
from .node import Cfg, Component
from .loader import load_config, config_from_dict, parse_overrides, dump_config, find_config

__all__ = ["Cfg", "Component", "load_config", "config_from_dict", "parse_overrides", "dump_config", "find_config"]
