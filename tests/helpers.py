"""TRANSITION: the shared test helpers live in conftest.py and reach tests as fixtures (``two_domains``,
``tiny_config``, ``make_two_domain_set``). This module only keeps ``from helpers import ...`` working for the
test files not converted yet; delete it once none imports it."""
from conftest import blob_image, make_two_domain_set, tiny_config_dict

__all__ = ["blob_image", "make_two_domain_set", "tiny_config_dict"]
