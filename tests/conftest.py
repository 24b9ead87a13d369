"""Shared fixtures: where the reference corpora live.

Tests read the shared copies of PTB, WikiText-2 and the evaluation sets through ``NCE_LM_DATA`` (``.ci/run``
points it at ``../shared/data``); a test that needs them is skipped when the variable is unset, and never
touches the network.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder named by ``NCE_LM_DATA``, laid out as ``<folder>/<dataset>/<file>``; skip when unset."""
    folder = os.environ.get("NCE_LM_DATA")
    if not folder or not Path(folder).is_dir():
        pytest.skip("NCE_LM_DATA does not name a folder holding the shared corpora")
    return Path(folder)
