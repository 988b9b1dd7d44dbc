"""Finding DWPose's two ONNX files (detector ``pose/yolox_l.onnx``, whole-body ``pose/dw-ll_ucoco_384.onnx``).

Same order as RAFT and depth: what the user named, then the host's file locator, then the Wan2GP
``ckpts`` folders. Nothing is ever downloaded: a miss is one line saying where we looked.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ...errors import WeightsNotFoundError
from .raft_weights import default_search_dirs
from .weights_files import HostLocator, file_fingerprint, locate_with_host

DETECTOR_FILE = "pose/yolox_l.onnx"
POSE_FILE = "pose/dw-ll_ucoco_384.onnx"
POSE_HOW_TO_GET = ("Wan2GP downloads them with its core files (repo DeepBeepMeep/Wan2.1, folder 'pose'); "
              "or pass --pose-weights DIR holding yolox_l.onnx and dw-ll_ucoco_384.onnx")


@dataclass(frozen=True)
class PoseWeights:
    """The two ONNX files of one DWPose set and where they were found."""

    detector: str
    pose: str
    origin: str

    def identity(self) -> str:
        """A stable id of both files for cache keys (size + hashed ends of each file)."""
        det = file_fingerprint(self.detector, label="pose detector weights")
        pose = file_fingerprint(self.pose, label="pose weights")
        return f"dwpose:{det[:16]}:{pose[:16]}"


def _pair_in(folder: Path) -> Optional[tuple[Path, Path]]:
    """Both files in ``folder`` itself or in its ``pose/`` subfolder."""
    for base in (folder, folder / "pose"):
        det, pose = base / Path(DETECTOR_FILE).name, base / Path(POSE_FILE).name
        if det.is_file() and pose.is_file():
            return det.resolve(), pose.resolve()
    return None


def _explicit(paths: Sequence[str | os.PathLike[str]]) -> PoseWeights:
    items = [Path(p).expanduser() for p in paths]
    if len(items) == 1 and items[0].is_dir():
        pair = _pair_in(items[0])
        if pair is None:
            raise WeightsNotFoundError(f"Pose weights folder {items[0]} lacks yolox_l.onnx and/or "
                                       f"dw-ll_ucoco_384.onnx (directly or in pose/): {POSE_HOW_TO_GET}.")
        return PoseWeights(str(pair[0]), str(pair[1]), f"explicit folder {items[0]}")
    if len(items) == 2 and all(p.is_file() for p in items):
        by_name = {p.name: p for p in items}
        det = by_name.get(Path(DETECTOR_FILE).name, items[0])
        pose = by_name.get(Path(POSE_FILE).name, items[1])
        if det == pose:
            raise WeightsNotFoundError("Pose weights: pass the detector file and then the pose file.")
        return PoseWeights(str(det.resolve()), str(pose.resolve()), "explicit files")
    missing = ", ".join(str(p) for p in items if not p.exists()) or ", ".join(str(p) for p in items)
    raise WeightsNotFoundError(f"Pose weights {missing} not found: pass a folder holding both ONNX files "
                               "or the two files (detector, then pose).")


def find_pose_weights(explicit: Optional[str | os.PathLike[str] | Sequence[str | os.PathLike[str]]] = None, *,
                      host_locator: Optional[HostLocator] = None,
                      search_dirs: Optional[Sequence[Path]] = None) -> PoseWeights:
    """The DWPose files to use; ``WeightsNotFoundError`` (one line) when there are none.

    Order: ``explicit`` (a folder, or the two files); ``host_locator`` for both relative names;
    ``<dir>/pose/…`` for each of ``search_dirs`` (default: ``$WAN2GP_CKPTS``, ``$WAN2GP_ROOT/ckpts``,
    the Wan2GP folder above the plugin, ``./ckpts``).
    """
    if explicit:
        paths = [explicit] if isinstance(explicit, (str, os.PathLike)) else list(explicit)
        return _explicit(paths)
    det, pose = locate_with_host(host_locator, DETECTOR_FILE), locate_with_host(host_locator, POSE_FILE)
    if det is not None and pose is not None:
        return PoseWeights(str(det), str(pose), "Wan2GP file locator")
    folders = [Path(f).expanduser() for f in (default_search_dirs() if search_dirs is None else search_dirs)]
    for folder in folders:
        det, pose = folder / DETECTOR_FILE, folder / POSE_FILE
        if det.is_file() and pose.is_file():
            return PoseWeights(str(det.resolve()), str(pose.resolve()), f"Wan2GP ckpts {folder}")
    looked = ", ".join(str(f / "pose") for f in folders) or "no ckpts folder"
    host = "Wan2GP's file locator, " if host_locator is not None else ""
    raise WeightsNotFoundError(f"DWPose weights ({DETECTOR_FILE}, {POSE_FILE}) not found (looked in {host}{looked}): "
                               f"{POSE_HOW_TO_GET}.")
