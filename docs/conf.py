"""Sphinx configuration for the scgi_twisted documentation (built offline)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "scgi_twisted"
author = "scgi_twisted developers"
copyright = "2026, scgi_twisted developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "deploy/*.in", "**/*.in"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "description"
nitpicky = False
html_theme = "alabaster"
html_title = "scgi_twisted"
