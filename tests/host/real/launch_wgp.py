"""Start Wan2GP's real ``wgp.py`` on a machine without an NVIDIA driver (CPU torch, no weights).

Two torch.cuda functions that Wan2GP calls while ``wgp.py`` is imported need a CUDA driver; only these two
are replaced, for the whole run (without a driver they can only raise):

* ``torch.cuda.get_device_capability`` (``shared/attention.py``: at its import, and again from
  ``get_supported_attention_modes()`` which ``wgp.py`` runs at import) answers ``(0, 0)``: no bfloat16 or
  fused-attention kernels, which a CPU has none of either;
* ``torch.cuda.current_device`` (a default argument in ``models/wan/modules/t5.py``, evaluated when the module
  is imported) answers ``0``.

Everything else is the host's own: ``wgp.py`` runs as ``__main__`` with the remaining command-line arguments
(``--server-port`` …). Run it from the Wan2GP folder: ``python launch_wgp.py [wgp.py arguments]``.
"""
from __future__ import annotations

import os
import runpy
import sys

import torch

def patch_cuda_queries() -> None:
    """The two torch.cuda functions answer as on a machine with no CUDA device (see the module docstring)."""
    torch.cuda.get_device_capability = lambda device=None: (0, 0)
    torch.cuda.current_device = lambda: 0


def main() -> None:
    root = os.getcwd()
    if not os.path.isfile(os.path.join(root, "wgp.py")):
        sys.exit("Run this launcher from a Wan2GP folder (it has no wgp.py).")
    if torch.cuda.is_available():
        sys.exit("CUDA is available: run wgp.py itself; this launcher is for machines without an NVIDIA driver.")
    patch_cuda_queries()
    sys.argv = ["wgp.py", *sys.argv[1:]]
    runpy.run_path(os.path.join(root, "wgp.py"), run_name="__main__")


if __name__ == "__main__":
    main()
