"""The two DWPose ONNX sessions, built for one device.

An onnxruntime session cannot move between devices, so ``place`` on another device and ``unload``
destroy the sessions; the next ``place`` builds them again from the files. The annotator pool
(``memory.offload.PlainPlacement``) drives this through the ``DevicePlaced`` protocol.
"""
from __future__ import annotations

import gc
from typing import Any, Optional

from ...errors import WeightsError


def choose_providers(device_type: str, available: list[str]) -> tuple[list[str], str]:
    """onnxruntime providers for ``device_type`` and a sentence saying which and why."""
    if device_type == "cuda":
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"], "onnxruntime CUDA"
        return ["CPUExecutionProvider"], ("onnxruntime CPU (this onnxruntime has no CUDA provider: "
                                          "install onnxruntime-gpu for the GPU)")
    return ["CPUExecutionProvider"], "onnxruntime CPU"


def installed_providers() -> list[str]:
    """The providers the installed onnxruntime offers, read from its package name without importing it (a
    cache hit never loads onnxruntime): ``onnxruntime-gpu`` adds CUDA; an onnxruntime already loaded is asked."""
    import importlib.metadata
    import sys

    if "onnxruntime" in sys.modules:
        return list(sys.modules["onnxruntime"].get_available_providers())
    try:
        importlib.metadata.distribution("onnxruntime-gpu")
    except importlib.metadata.PackageNotFoundError:
        return ["CPUExecutionProvider"]
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


class PoseSessions:
    """Detector + pose sessions from a :class:`~..weights.pose_weights.PoseWeights` (or any object
    with ``detector`` and ``pose`` paths)."""

    def __init__(self, weights: Any) -> None:
        self.weights = weights
        self.device_type: Optional[str] = None
        self.providers = "not built"
        self._sessions: Optional[tuple[Any, Any]] = None
        self.builds = 0

    def place(self, device: Any) -> "PoseSessions":
        """Build both sessions for ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a torch device)."""
        kind = getattr(device, "type", str(device).split(":")[0])
        if self._sessions is not None and kind == self.device_type:
            return self
        self.unload()
        import onnxruntime as ort

        providers, self.providers = choose_providers(kind, list(ort.get_available_providers()))
        options: list[Any] = providers
        index = getattr(device, "index", None)
        if index is None and ":" in str(device):
            index = int(str(device).split(":")[1])
        if providers[0] == "CUDAExecutionProvider" and index is not None:
            options = [("CUDAExecutionProvider", {"device_id": int(index)}), "CPUExecutionProvider"]
        try:
            self._sessions = (ort.InferenceSession(str(self.weights.detector), providers=options),
                              ort.InferenceSession(str(self.weights.pose), providers=options))
        except Exception as exc:  # onnxruntime's own errors: a bad or truncated file
            reason = " ".join(str(exc).split())[:160]
            raise WeightsError(f"Cannot load the DWPose ONNX files ({reason}): check --pose-weights.") from exc
        self.device_type = kind
        self.builds += 1
        return self

    def pair(self) -> tuple[Any, Any]:
        if self._sessions is None:
            raise RuntimeError("pose sessions are not placed: call place(device) first")
        return self._sessions

    def unload(self) -> None:
        """Destroy the sessions (their device memory goes with them); ``place`` rebuilds them."""
        self._sessions = None
        self.device_type = None
        gc.collect()

    def release(self) -> None:
        self.unload()

    @property
    def built(self) -> bool:
        return self._sessions is not None
