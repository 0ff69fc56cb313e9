"""The dashboard answers remote clients only when its address was chosen on purpose."""
import subprocess
import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import access
from dashboard.access import allowed

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("source, ip, ok", [
    ("<default>", "127.0.0.1", True), ("<default>", "::1", True), ("<default>", "127.0.0.2", True),
    ("<default>", "192.168.1.20", False), ("<default>", "10.0.0.5", False), ("<default>", "fe80::1%eth0", False),
    ("<default>", "not-an-ip", False), ("<default>", None, True),
    ("command-line", "192.168.1.20", True), ("/srv/app/.streamlit/config.toml", "10.0.0.5", True),
])
def test_remote_clients_need_a_deliberately_chosen_address(source, ip, ok):
    assert allowed(source, ip) is ok


def test_where_streamlit_reads_no_config_the_address_is_nobodys_choice(tmp_path):
    """Started from another folder the repo's config.toml is not read: the guard is what keeps remote clients out."""
    code = "import streamlit.config as c; c.get_config_options(); print(c.get_where_defined('server.address'))"
    where = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True).stdout
    assert "<default>" in where


@pytest.mark.parametrize("ip, served", [("192.168.1.20", False), ("127.0.0.1", True)])
def test_home_refuses_a_remote_client_of_a_server_nobody_chose_an_address_for(monkeypatch, tmp_path, ip, served):
    monkeypatch.setenv("LATENTLAB_CHECKPOINTS", str(tmp_path))
    monkeypatch.setattr(access.config, "get_where_defined", lambda key: "<default>")
    monkeypatch.setattr(type(st.context), "ip_address", property(lambda self: ip))
    at = AppTest.from_file(str(ROOT / "dashboard" / "Home.py"), default_timeout=60).run()
    assert not at.exception
    refused = any("answers only on the machine" in e.value for e in at.error)
    assert refused is not served
    assert bool(at.title) is served  # a refused client sees no page at all
