"""wan2gp-structure-video: structure video → VACE control video, with strict annotator memory control.

The repository root is both the Wan2GP plugin folder (imported as ``<folder>.plugin``) and the
pip package ``wan2gp_structure_video``. Heavy modules are imported lazily so that importing the
package (or the plugin) stays cheap.
"""
from __future__ import annotations

__version__ = "0.1.0"
