"""The integration suite against a real Wan2GP checkout named by ``$WAN2GP_ROOT`` (marker ``host``).

Imports the host's own ``shared/utils/plugins.py``, ``shared/api.py``, ``shared/api_webui.py``,
``shared/utils/process_locks.py``, ``shared/utils/offload_registry.py`` and
``shared/utils/files_locator.py``. Two things are not the host's: ``wgp`` (tests/host/fake_wgp.py;
the real one needs the whole model stack) and ``shared.utils`` is entered without running its
``__init__`` (that imports diffusers samplers the plugin never touches), with
``shared.utils.wgp_config_migration`` reduced to the two names ``plugins.py`` imports from it (the real
module imports the audio/upsampling post-processors and mmgp).
"""
from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path

import pytest

HOST_MODULES = ("shared.utils.process_locks", "shared.utils.offload_registry", "shared.utils.files_locator",
                "shared.utils.plugins", "shared.api", "shared.api_webui")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/host" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.host)


@pytest.fixture(scope="session")
def wan2gp_root() -> Path:
    value = os.environ.get("WAN2GP_ROOT")
    if not value:
        pytest.skip("WAN2GP_ROOT is unset: point it at a Wan2GP checkout (see DEVELOPERS.md)")
    root = Path(value).expanduser().resolve()
    if not (root / "wgp.py").is_file() or not (root / "shared" / "utils" / "plugins.py").is_file():
        pytest.skip(f"WAN2GP_ROOT={root} is not a Wan2GP checkout (no wgp.py / shared/utils/plugins.py)")
    return root


@pytest.fixture(scope="session")
def host_modules(wan2gp_root):
    """The host's own modules, imported from the checkout."""
    pytest.importorskip("git", reason="the host's plugins.py needs GitPython (pip install gitpython)")
    pytest.importorskip("requests", reason="the host's plugins.py needs requests")
    saved = {name: module for name, module in sys.modules.items() if name == "shared" or name.startswith("shared.")}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(wan2gp_root))
    utils = types.ModuleType("shared.utils")
    utils.__path__ = [str(wan2gp_root / "shared" / "utils")]
    sys.modules["shared.utils"] = utils
    migration = types.ModuleType("shared.utils.wgp_config_migration")
    migration.INSTALLED_REMOTE_PLUGINS_KEY = "installed_remote_plugins"
    migration.migrate_bundled_plugin_ids = lambda server_config, server_config_filename="": False
    sys.modules["shared.utils.wgp_config_migration"] = migration
    modules = {name.rsplit(".", 1)[-1]: importlib.import_module(name) for name in HOST_MODULES}
    for name, module in modules.items():
        assert Path(module.__file__).resolve().is_relative_to(wan2gp_root), (name, module.__file__)
    yield types.SimpleNamespace(root=wan2gp_root, **modules)
