"""Structure Video inside Wan2GP's real ``wgp.py`` (marker ``host``; needs ``WAN2GP_ROOT`` and ``WAN2GP_PYTHON``).

A copy of the checkout runs ``wgp.py`` through ``launch_wgp.py`` (two torch.cuda queries answered as on a
machine without an NVIDIA driver; nothing else patched) with ``WAN2GP_PYTHON``, a Python holding Wan2GP's
requirements. Chromium then does what a user does: the Plugins tab installs this repository's committed HEAD
from its GitHub URL (git's ``url.<base>.insteadOf``, in a private ``GIT_CONFIG_GLOBAL``, points it at a local
bare clone), Restart (Wan2GP exits 42 and is started again, as its own scripts do), our tab prefilled from the
generator, Extract with RAFT (random weights in the princeton layout at ``ckpts/flow/raft-things.pth``), Send
from the default model (not VACE: the generator switches to Vace 1.3B, whose two weight files are present,
empty), Send again into that VACE model after the user changed its size, the host's save-on-tab-switch in place,
and Generate through the host's queue, which ends with the host's error (no other weights; no network). The
pool's state comes from the plugin's ``structure_video_memory`` API endpoint. Screenshots go to
``test-artifacts/real-host/`` (or ``$STRUCTURE_VIDEO_ARTIFACTS/real-host``); the suite installs what is committed.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
REPO_NAME = "wan2gp-structure-video"
URL = f"https://github.com/example-author/{REPO_NAME}"
LAUNCHER = Path(__file__).resolve().parent / "launch_wgp.py"
ARTIFACTS = Path(os.environ.get("STRUCTURE_VIDEO_ARTIFACTS", REPO / "test-artifacts")) / "real-host"
CHROMIUM = os.environ.get("STRUCTURE_VIDEO_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]
START_TIMEOUT_S = float(os.environ.get("WAN2GP_START_TIMEOUT", "600"))
#: Vace 1.3B's weight files in Wan2GP's definitions (its transformer and its VACE module): present, empty.
VACE_1_3B_FILES = ("wan2.1_text2video_1.3B_mbf16.safetensors", "wan2.1_Vace_1_3B_module.safetensors")
TARGET = {"resolution": "320x192", "frames": "17", "fps": "16"}

pytestmark = pytest.mark.browser


def _required() -> tuple[Path, Path]:
    root, python = os.environ.get("WAN2GP_ROOT"), os.environ.get("WAN2GP_PYTHON")
    if not root or not python:
        pytest.skip("WAN2GP_ROOT and WAN2GP_PYTHON are needed (see DEVELOPERS.md, 'Against the real wgp.py')")
    if not (Path(root) / "wgp.py").is_file() or not Path(python).is_file():
        pytest.skip(f"WAN2GP_ROOT={root} has no wgp.py or WAN2GP_PYTHON={python} is missing")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing")
    return Path(root).resolve(), Path(python)


def _write_random_raft(path: Path) -> None:
    """RAFT-large with random weights, saved in the princeton-vl layout Wan2GP's file has."""
    import torch
    from torchvision.models.optical_flow import raft_large

    sys.path.insert(0, str(REPO / "tests"))
    from test_raft_weights import to_princeton

    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(to_princeton(raft_large(weights=None).state_dict()), path)


class Wan2GP:
    """One Wan2GP folder and its ``wgp.py`` process (started again after a restart)."""

    def __init__(self, folder: Path, python: Path, env: dict, log: Path) -> None:
        from ui_helpers import free_port

        self.folder, self.python, self.env, self.log = folder, python, env, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process: subprocess.Popen | None = None

    def start(self, tries: int = 4) -> None:
        """Start ``wgp.py`` and wait until it answers. Gradio's own start-up check (a HEAD request with a
        3-s timeout) fails on a loaded machine, and the server then quits: that case is tried again."""
        for attempt in range(tries):
            try:
                return self._start_once()
            except AssertionError as error:
                if "localhost is not accessible" not in str(error) or attempt == tries - 1:
                    raise

    def _start_once(self) -> None:
        with open(self.log, "a", encoding="utf-8") as log:
            log.write(f"\n===== start {time.strftime('%H:%M:%S')}\n")
            self.process = subprocess.Popen(
                [str(self.python), str(LAUNCHER), "--server-port", str(self.port), "--server-name", "127.0.0.1"],
                cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        # Wait for Gradio's "Running on local URL" line before any request: Gradio then checks the server with
        # a HEAD request that times out after 3 s, and a page load of ours meanwhile (7 MB) can make it miss.
        started = len(self.log.read_text(encoding="utf-8", errors="replace"))
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"wgp.py exited with {self.process.returncode}: {self.tail()}")
            if "Running on local URL" in self.log.read_text(encoding="utf-8", errors="replace")[started:]:
                break
            time.sleep(2)
        time.sleep(20)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"wgp.py exited with {self.process.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=60) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(5)
        raise AssertionError(f"wgp.py did not answer within {START_TIMEOUT_S:.0f} s: {self.tail()}")

    def wait_exit(self, timeout: float = 120) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def config(self) -> dict:
        return json.loads((self.folder / "wgp_config.json").read_text(encoding="utf-8"))

    def memory(self) -> dict:
        """The plugin's ``structure_video_memory`` endpoint (Gradio's call API: post, then read the result)."""
        base = f"{self.url}gradio_api/call/structure_video_memory"
        request = urllib.request.Request(base, data=b'{"data": []}', headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            event_id = json.loads(answer.read())["event_id"]
        with urllib.request.urlopen(f"{base}/{event_id}", timeout=60) as answer:
            text = answer.read().decode()
        data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])[0]


@pytest.fixture(scope="module")
def host():
    root, python = _required()
    sys.path.insert(0, str(REPO / "tests"))
    # not under pytest's basetemp: a concurrent pytest run may prune old basetemps while Wan2GP runs from it
    work = Path(tempfile.mkdtemp(prefix="real-wan2gp-"))
    folder = work / "Wan2GP"
    shutil.copytree(root, folder, ignore=shutil.ignore_patterns(
        ".git", "ckpts", "outputs", "wgp_config.json", "ffmpeg_bins", "__pycache__", REPO_NAME))
    _write_random_raft(folder / "ckpts" / "flow" / "raft-things.pth")
    for name in VACE_1_3B_FILES:
        (folder / "ckpts" / name).write_bytes(b"")
    mirror = work / "mirror" / "example-author" / REPO_NAME
    subprocess.run(["git", "clone", "--quiet", "--bare", str(REPO), str(mirror)], check=True)
    gitconfig = work / "gitconfig"
    gitconfig.write_text(f'[url "file://{work / "mirror"}/"]\n\tinsteadOf = https://github.com/\n')
    env = {**os.environ, "GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_CONFIG_NOSYSTEM": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("WAN2GP_STRUCTURE_VIDEO_HOME", None)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    wan2gp = Wan2GP(folder, python, env, ARTIFACTS / "wgp.log")
    wan2gp.log.write_text("")
    wan2gp.start()
    yield wan2gp
    wan2gp.stop()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def page(host):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(120_000)
        yield page
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def field(page, elem: str):
    return page.locator(f"#{elem} input, #{elem} textarea").first


def test_install_from_the_plugins_tab_then_restart(host, page):
    page.goto(host.url)
    page.get_by_role("tab", name="Plugins").click()
    page.get_by_label("GitHub URL").fill(URL)
    page.get_by_role("button", name="Download and Install from URL").click()
    plugin_dir = host.folder / "plugins" / REPO_NAME
    deadline = time.monotonic() + 300
    while REPO_NAME not in host.config().get("enabled_plugins", []) and time.monotonic() < deadline:
        time.sleep(2)
    shot(page, "1_installed")
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    cloned = subprocess.run(["git", "-C", str(plugin_dir), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert cloned.strip() == head.strip(), host.tail()
    assert REPO_NAME in host.config()["enabled_plugins"]  # the Plugins tab enabled it after the install
    page.get_by_role("button", name="Restart").click()
    page.wait_for_timeout(3000)
    page.goto("about:blank")  # nothing of ours loads the server while Gradio checks it at start-up
    assert host.wait_exit() == 42  # Wan2GP's restart: its scripts start it again on 42, so does this suite
    host.start()
    page.goto(host.url)
    page.get_by_role("tab", name="Structure Video").wait_for()


def test_tab_prefilled_from_the_generator_then_extract(host, page):
    page.get_by_role("tab", name="Structure Video").click()
    # the host's tab-select event (after its save-on-tab-switch) prefilled the generator's target
    page.wait_for_function("document.querySelector('#structure_video_resolution textarea, "
                           "#structure_video_resolution input')?.value === '832x480'")
    assert field(page, "structure_video_frames").input_value() == "81"
    shot(page, "2_tab_prefilled")
    page.locator("#structure_video_sample").click()
    page.wait_for_function("document.querySelector('#structure_video_info')?.innerText.includes('frames')")
    for name, value in TARGET.items():
        field(page, f"structure_video_{name}").fill(value)
        field(page, f"structure_video_{name}").press("Tab")
    page.locator("#structure_video_extract").click()
    page.wait_for_selector("#structure_video_guide video[src]", timeout=600_000)
    shot(page, "3_extracted")
    built = {name: entry for name, entry in host.memory()["annotators"].items() if entry["built"]}
    assert any(name.startswith("raft") for name in built), (built, host.tail())


def test_send_from_a_model_that_is_not_vace(host, page):
    page.locator("#structure_video_send").click()
    page.wait_for_selector("#video_input video[src]", timeout=120_000)  # the generator's Control Video
    page.wait_for_timeout(1500)
    shot(page, "4_after_send_from_t2v")
    src = page.locator("#video_input video").first.get_attribute("src") or ""
    ours = page.locator("#structure_video_guide video").first.get_attribute("src") or ""
    assert ours and src.rsplit("/", 1)[-1] == ours.rsplit("/", 1)[-1], (src, ours)  # Gradio serves copies
    page.get_by_role("tab", name="Structure Video").click()
    status = page.locator("#structure_video_send_status").inner_text()
    assert "Vace 1.3B" in status and "its weights are downloaded" in status, status
    page.get_by_role("tab", name="Media Generator").click()
    page.wait_for_function("[...document.querySelectorAll('input')].some(i => i.offsetParent && "
                           "i.value.includes('Vace 1.3B'))")  # the generator's model choice


def test_send_into_the_vace_model_after_its_size_changed(host, page):
    frames = page.get_by_label("Number of frames").first
    frames.fill("33")
    frames.press("Tab")
    page.get_by_role("tab", name="Structure Video").click()  # the host saves the generator's form here
    page.wait_for_timeout(1500)
    assert field(page, "structure_video_resolution").input_value() == TARGET["resolution"]  # the user's target
    page.locator("#structure_video_send").click()
    page.wait_for_selector("#video_input video[src]")
    page.wait_for_timeout(1500)
    shot(page, "5_after_send_into_vace")
    assert page.get_by_label("Number of frames").first.input_value() == TARGET["frames"]
    page.get_by_role("tab", name="Structure Video").click()
    status = page.locator("#structure_video_send_status").inner_text()
    assert "Vace 1.3B" in status and "switches" not in status, status


def test_generate_reaches_the_hosts_queue_and_its_clear_gen_cache_releases_the_pool(host, page):
    page.locator("#structure_video_generate_panel").get_by_text("Generate with VACE").first.click()
    page.locator("#structure_video_prompt textarea").fill("a paper boat on a river")
    page.locator("#structure_video_generate").click()
    page.wait_for_function("/Generation failed|Done/.test(document.querySelector('#structure_video_gen_status')"
                           "?.innerText || '')", timeout=600_000)
    shot(page, "6_generate_ended")
    status = page.locator("#structure_video_gen_status").inner_text()
    assert "Generation failed" in status, status
    log = host.log.read_text(encoding="utf-8", errors="replace")
    assert "WanGP API queued client_ids" in log and "WanGP API queue error" in log  # the host's queue ran it
    memory = host.memory()
    assert memory["hooked"] and memory["host_clears"] >= 1, memory
    assert not any(entry["built"] for entry in memory["annotators"].values()), memory
    assert any(name.startswith("raft") for name in memory["host_released"]), memory
