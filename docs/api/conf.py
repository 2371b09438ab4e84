"""Sphinx configuration for cachespec's API reference (tox -e docs: warnings are errors)."""

from __future__ import annotations

project = "cachespec"
extensions = ["sphinx.ext.autodoc"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# The drivers are extras: the reference builds from the docstrings without them installed.
autodoc_mock_imports = ["redis", "pymemcache", "fakeredis"]
html_theme = "alabaster"
exclude_patterns = ["_build"]
