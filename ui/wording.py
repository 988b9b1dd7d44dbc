"""The UI's words for messages written for the command line.

The pipeline's errors tell a CLI user which option to change (``--backend dis``, ``--raft-weights``);
in the web UI the same advice must name the controls on the page. :func:`ui_words` is the one place
that translates them; every error the tab shows goes through it.
"""
from __future__ import annotations

import re

from ..errors import plain_words

#: Whole CLI phrases first (they need more than a one-to-one swap of the option name).
_PHRASES: tuple[tuple[str, str], ...] = (
    (r"pass --raft-weights PATH, put ", "put "),
    (r"check --raft-weights\.", "check the RAFT weights file (Wan2GP's ckpts/flow/)."),
    (r"(?:use|with) --backend dis", 'choose Flow backend "DIS (OpenCV, CPU, fast)"'),
    (r"use --type canny or raw", 'choose Type "Canny edges" or "Raw frames"'),
    (r"choose another(?: folder)? with --cache-dir, or use --no-cache", "free some disk space or clear the flow cache "
     "(Flow cache ▸ Clear)"),
    (r"try again, or use --no-cache", "try again, or clear the flow cache (Flow cache ▸ Clear)"),
    (r"use --device cpu or auto", 'choose Flow backend "DIS (OpenCV, CPU, fast)"'),
    (r"use --raft-model (\w+)", r"use RAFT-\1 weights"),
    (r"--batch-size 0", "Batch size 0 (automatic)"),
    (r"\(--allow-short, allow_short=True\)", '(More settings ▸ "Accept a damaged (short) video")'),
)

#: CLI options and the label of the control that sets the same thing in the tab.
_OPTIONS: dict[str, str] = {
    "--resolution": "Resolution (WxH)",
    "--frames": "Frames",
    "--fps": "FPS",
    "--type": "Type",
    "--treatment": "Treatment",
    "--fit": "Fit",
    "--start": "Range start",
    "--end": "Range end",
    "--range-unit": "Range unit",
    "--motion-strength": "Motion strength",
    "--backend": "Flow backend",
    "--iterations": "RAFT iterations",
    "--batch-size": "Batch size",
    "--raft-weights": "RAFT weights file",
    "--depth-weights": "Depth weights",
    "--depth-contrast": "Depth contrast",
    "--depth-smoothing": "Depth smoothing (frames)",
    "--cache-dir": "cache folder",
    "--cuts": "Hard cuts",
    "--allow-short": "Accept a damaged (short) video",
}

_OPTION = re.compile(r"--[a-z][a-z-]*")



def ui_words(message: str) -> str:
    """``message`` with the command line's option names replaced by the tab's control names."""
    text = plain_words(message)
    for pattern, replacement in _PHRASES:
        text = re.sub(pattern, replacement, text)

    def control(match: re.Match) -> str:
        option = match.group(0)
        label = _OPTIONS.get(option, option[2:].replace("-", " "))
        return f'"{label}"'

    return _OPTION.sub(control, text)
