"""What the tab's handlers depend on, passed to them explicitly, and how they are bound to events."""
from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .outputs import OutputFolder


@dataclass
class TabDeps:
    """The collaborators of one built tab: the plugin (host globals), the installed host hooks (the
    GPU lock goes to the pipeline through ``RunContext.gpu_lock``), the output folder, and the
    per-browser-session bookkeeping of cancellation and generation jobs."""

    plugin: Any
    outputs: OutputFolder
    hooks: Any = None
    #: The host's per-session ``state`` component and the Blocks it lives in (hosted only).
    state_component: Any = None
    blocks: Any = None
    cancel_events: dict[str, threading.Event] = field(default_factory=dict)
    jobs: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    guard: threading.Lock = field(default_factory=threading.Lock)

    # Per-browser-session data lives here, keyed by the session, not in ``gr.State`` inputs: the file
    # paths of a run never come back from the client (a crafted call cannot make preview, Send or
    # Generate read another file), and the host's ``state`` is read where Wan2GP keeps it.
    def run_for(self, request: Any) -> Optional[dict]:
        """The last extraction of this browser session (the guide Send / Generate / preview use)."""
        return self.runs.get(session_key(request))

    def set_run(self, request: Any, run: dict) -> None:
        with self.guard:
            self.runs[session_key(request)] = run

    def host_state(self, request: Any) -> Any:
        """The host's live per-session ``state`` dict of this browser session (None standalone), read
        from the Blocks' session store as Wan2GP's own API session does."""
        session_hash = getattr(request, "session_hash", None)
        component_id = getattr(self.state_component, "_id", None)
        holder = getattr(self.blocks, "state_holder", None)
        if not session_hash or component_id is None or holder is None:
            return None
        try:
            value = holder[session_hash][component_id]
        except Exception:
            return None
        return value if isinstance(value, dict) else None

    def cancel_event(self, request: Any, fresh: bool = False) -> threading.Event:
        key = session_key(request)
        with self.guard:
            event = self.cancel_events.get(key)
            if event is None or fresh:
                event = self.cancel_events[key] = threading.Event()
            return event

    def gpu_lock_for(self, state: Any) -> Optional[Callable[[], Any]]:
        """The ``RunContext.gpu_lock`` of one event: the host's lock through the hooks, else the default."""
        return self.hooks.gpu_lock_for(state) if self.hooks is not None else None


def session_key(request: Any) -> str:
    return str(getattr(request, "session_hash", None) or "default")


def _signature_without(fn: Callable[..., Any], count: int) -> inspect.Signature:
    signature = inspect.signature(fn)
    return signature.replace(parameters=list(signature.parameters.values())[count:])


def _finish(bound: Callable[..., Any], fn: Callable[..., Any], count: int) -> Callable[..., Any]:
    """Give ``bound`` the name, doc and signature of ``fn`` minus its first ``count`` parameters
    (Gradio reads them for the inputs, ``gr.Progress`` and ``gr.Request``); no ``__wrapped__``."""
    signature = _signature_without(fn, count)
    bound.__name__ = fn.__name__
    bound.__qualname__ = fn.__qualname__
    bound.__doc__ = fn.__doc__
    bound.__module__ = fn.__module__
    bound.__signature__ = signature  # type: ignore[attr-defined]
    bound.__annotations__ = {name: p.annotation for name, p in signature.parameters.items()
                             if p.annotation is not inspect.Parameter.empty}
    return bound


def bind(fn: Callable[..., Any], deps: TabDeps) -> Callable[..., Any]:
    """An event callback that calls ``fn(deps, *event_args)``.

    Its closure holds only ``fn`` and ``deps`` (never None, never the host's API session), so Wan2GP's
    ``plugin_ui_context`` leaves its clicks to Gradio: they show their own progress."""

    def bound(*args: Any, **kwargs: Any) -> Any:
        return fn(deps, *args, **kwargs)

    return _finish(bound, fn, 1)


def bind_with_session(fn: Callable[..., Any], deps: TabDeps, api_session: Any) -> Callable[..., Any]:
    """An event callback that calls ``fn(deps, api_session, *event_args)``: the session sits in its
    closure, which is how Wan2GP recognises a click that submits through the API session (it then
    runs the click in its worker and forwards the queue, progress and abort to the generator)."""
    if api_session is None:
        raise ValueError("bind_with_session needs the host's API session")

    def bound(*args: Any, **kwargs: Any) -> Any:
        return fn(deps, api_session, *args, **kwargs)

    return _finish(bound, fn, 2)
