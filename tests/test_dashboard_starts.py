import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def test_home_renders_without_exceptions(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTLAB_CHECKPOINTS", str(tmp_path))
    app = AppTest.from_file(str(ROOT / "dashboard" / "Home.py")).run(timeout=60)
    assert not app.exception
    assert "LatentLab" in app.title[0].value
    assert "No runs yet" in app.info[0].value and str(tmp_path) in app.info[0].value
    assert app.button(key="home_demo").label.startswith("Train a demo model now")  # the way out of an empty folder


def test_streamlit_run_serves_the_app(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "dashboard/Home.py", "--server.port", str(port),
                             "--server.headless", "true"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, body = time.time() + 60, ""
        while time.time() < deadline and body != "ok":
            try:
                body = urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2).read().decode()
            except OSError:
                time.sleep(0.5)
        assert body == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
