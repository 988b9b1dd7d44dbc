"""Which VACE model Send and "Generate with VACE" use (``ui/host_bridge/vace_choice.py``), against the fake host's
model definitions and — when ``WAN2GP_ROOT`` names a Wan2GP checkout — the host's own ``defaults/*.json`` and
its own file locator."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "host"))
import fake_wgp  # noqa: E402
from wan2gp_structure_video.ui.host_bridge import settings, vace_choice  # noqa: E402

#: Base names of the weight files in the fake's (and Wan2GP's) definitions, with int8 quantization.
T2V_1_3B = "wan2.1_text2video_1.3B_mbf16.safetensors"
VACE_1_3B_MODULE = "wan2.1_Vace_1_3B_module.safetensors"
T2V_14B_INT8 = "wan2.1_text2video_14B_quanto_mbf16_int8.safetensors"
T2V_14B_BF16 = "wan2.1_text2video_14B_mbf16.safetensors"
VACE_14B_MODULE_INT8 = "wan2.1_Vace_14B_module_quanto_mbf16_int8.safetensors"
VACE_14B_MODULE_BF16 = "wan2.1_Vace_14B_module_mbf16.safetensors"
T2V_2_2_INT8 = ("wan2.2_text2video_14B_high_quanto_mbf16_int8.safetensors",
                "wan2.2_text2video_14B_low_quanto_mbf16_int8.safetensors")


def _host_files_locator(root: Path, ckpts: Path):
    """A private copy of the host's ``shared/utils/files_locator.py`` searching ``ckpts`` only."""
    spec = importlib.util.spec_from_file_location("_host_files_locator", root / "shared" / "utils" / "files_locator.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.set_checkpoints_paths([str(ckpts)])
    return module


def _real_root() -> Path | None:
    value = os.environ.get("WAN2GP_ROOT")
    root = Path(value).expanduser() if value else None
    return root if root is not None and (root / "defaults" / "vace_14B_2_2.json").is_file() else None


@pytest.fixture(params=["fake", "real"])
def host(request, tmp_path, monkeypatch):
    """The fake ``wgp`` with the fake's definitions, or (``real``) the checkout's definitions and locator."""
    ckpts = tmp_path / "ckpts"
    ckpts.mkdir()
    if request.param == "real":
        root = _real_root()
        if root is None:
            pytest.skip("WAN2GP_ROOT is unset or not a Wan2GP checkout")
        wgp = fake_wgp.make_module(root, tmp_path, models_def=fake_wgp.host_model_defs(root),
                                   fl=_host_files_locator(root, ckpts))
    else:
        wgp = fake_wgp.make_module(tmp_path, tmp_path, fl=fake_wgp.Locator(ckpts))
    monkeypatch.setitem(sys.modules, "wgp", wgp)
    wgp.download = lambda *names: [(ckpts / name).write_bytes(b"") for name in names]
    return wgp


def test_the_current_vace_model_stays(host):
    choice = vace_choice.choose_vace_model("vace_1.3B")
    assert (choice.model_type, choice.name, choice.current) == ("vace_1.3B", "Vace 1.3B", True)


def test_without_weights_the_preference_order_with_the_partial_model_last(host):
    assert vace_choice.partially_supported("vace_14B_2_2") and not vace_choice.partially_supported("vace_14B")
    choice = vace_choice.choose_vace_model("t2v")
    assert choice.model_type == "vace_14B" and choice.reason == vace_choice.REASON_NO_WEIGHTS
    assert vace_choice.weights_present("vace_14B") is False


def test_the_model_whose_weights_are_downloaded(host):
    host.download(T2V_1_3B, VACE_1_3B_MODULE)
    choice = vace_choice.choose_vace_model("t2v")
    assert (choice.model_type, choice.name, choice.reason) == ("vace_1.3B", "Vace 1.3B", vace_choice.REASON_WEIGHTS)
    host.download(T2V_14B_INT8)  # half of vace_14B: its module is still missing
    assert vace_choice.choose_vace_model("t2v").model_type == "vace_1.3B"
    host.download(VACE_14B_MODULE_INT8)  # now both: the preference order decides
    assert vace_choice.choose_vace_model("t2v").model_type == "vace_14B"


def test_a_fully_supported_model_before_a_partial_one_even_when_preferred(host):
    # a finetune built on vace_14B_2_2 (same files) shares what the host says of its architecture
    assert vace_choice.partially_supported("vace_14B_lightning_3p_2_2")
    host.download(*T2V_2_2_INT8, VACE_14B_MODULE_INT8)
    choice = vace_choice.choose_vace_model("t2v")
    assert choice.model_type == "vace_14B_2_2" and choice.reason == vace_choice.REASON_WEIGHTS_PARTIAL
    host.download(T2V_1_3B, VACE_1_3B_MODULE)
    assert vace_choice.choose_vace_model("t2v").model_type == "vace_1.3B"


def test_the_files_follow_the_hosts_quantization(host):
    host.download(T2V_14B_BF16, VACE_14B_MODULE_BF16)  # bf16 files: with int8 asked, wgp would download int8
    assert vace_choice.weights_present("vace_14B") is False
    host.transformer_quantization = "bf16"
    assert vace_choice.weights_present("vace_14B") is True
    assert vace_choice.choose_vace_model("t2v").model_type == "vace_14B"


def test_send_names_the_model_and_why(host, tmp_path):
    host.download(T2V_1_3B, VACE_1_3B_MODULE)
    state = {"model_type": "t2v", "all_settings": {"t2v": {"resolution": "1280x720"}}}
    outcome = settings.send_guide_to_settings(state, None, str(tmp_path / "g.mp4"), 9, "128x96")
    assert outcome.switched and outcome.model_type == "vace_1.3B"
    assert outcome.model_words() == ("**Vace 1.3B** (`vace_1.3B`); the generator switches to it: "
                                     + vace_choice.REASON_WEIGHTS)
    assert settings.pick_vace_model_type(state) == "vace_1.3B"  # Generate with VACE uses the same model


def test_other_vace_models_of_the_host_count_after_the_preferred_ones(tmp_path, monkeypatch):
    models = {**fake_wgp.MODELS_DEF,
              "vace_own": {"name": "My Vace", "architecture": "vace_14B", "URLs": [f"{fake_wgp.HF}x/own.safetensors"]},
              "vace_hidden": {"name": "Hidden", "architecture": "vace_14B", "visible": False,
                              "URLs": [f"{fake_wgp.HF}x/hidden.safetensors"]}}
    ckpts = tmp_path / "ckpts"
    ckpts.mkdir()
    wgp = fake_wgp.make_module(tmp_path, tmp_path, models_def=models, fl=fake_wgp.Locator(ckpts))
    monkeypatch.setitem(sys.modules, "wgp", wgp)
    assert vace_choice.vace_candidates() == ["vace_14B_2_2", "vace_14B", "vace_1.3B", "vace_14B_lightning_3p_2_2",
                                             "vace_own"]
    (ckpts / "hidden.safetensors").write_bytes(b"")
    assert vace_choice.choose_vace_model("t2v").model_type == "vace_14B"
    (ckpts / "own.safetensors").write_bytes(b"")
    assert vace_choice.choose_vace_model("t2v") == vace_choice.VaceChoice("vace_own", "My Vace",
                                                                           vace_choice.REASON_WEIGHTS)


def test_a_host_that_cannot_tell_falls_back_to_the_preference_order(tmp_path, monkeypatch):
    wgp = fake_wgp.make_module(tmp_path, tmp_path)
    del wgp.get_model_filename  # an older host
    monkeypatch.setitem(sys.modules, "wgp", wgp)
    choice = vace_choice.choose_vace_model("t2v")
    assert choice.model_type == "vace_14B" and choice.reason == vace_choice.REASON_UNKNOWN
    monkeypatch.delitem(sys.modules, "wgp")
    assert vace_choice.choose_vace_model("t2v").model_type == vace_choice.VACE_MODEL_TYPES[0]  # no host at all
