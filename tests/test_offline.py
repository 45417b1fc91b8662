"""Importing the package forces offline mode, whatever the environment says and whatever came first."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, os, sys
{first}
import layeringdiff
from huggingface_hub import constants, is_offline_mode
print(json.dumps({{"env": [os.environ["HF_HUB_OFFLINE"], os.environ["TRANSFORMERS_OFFLINE"]],
                  "constant": constants.HF_HUB_OFFLINE, "offline": is_offline_mode()}}))
"""


def probe(first: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(first=first)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_offline_is_forced_before_the_hub_is_imported():
    assert probe("") == {"env": ["1", "1"], "constant": True, "offline": True}


def test_offline_is_forced_when_the_hub_was_imported_first():
    # huggingface_hub read HF_HUB_OFFLINE=0 at its import; the package still turns it on
    got = probe("import huggingface_hub.constants as c; assert c.HF_HUB_OFFLINE is False")
    assert got == {"env": ["1", "1"], "constant": True, "offline": True}
