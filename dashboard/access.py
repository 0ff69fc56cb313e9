"""Who may use the dashboard: this machine only, unless whoever started the server chose an address on purpose.

`.streamlit/config.toml` binds the server to localhost, but Streamlit reads that file from the current folder only:
started from anywhere else, the server listens on every interface. Then the address was never chosen, so the app
itself answers only clients on this machine; an address given on the command line (`--server.address`), in an
environment variable or in a config file is a deliberate choice and is honoured (README: Exposing the dashboard).
"""
from __future__ import annotations

import ipaddress

import streamlit as st
from streamlit import config

REFUSAL = ("This LatentLab dashboard answers only on the machine it runs on: anyone who can open it can start "
           "training jobs and change labels. To use it from here, tunnel to it (ssh -L 8501:localhost:8501 HOST) "
           "or restart it with an explicit --server.address on a trusted network (see the README).")


def allowed(address_source: str, client_ip: str | None) -> bool:
    """True when a client at `client_ip` may use a server whose address came from `address_source`
    (Streamlit's `config.get_where_defined`: "<default>" when nobody chose one)."""
    if address_source != "<default>" or client_ip is None:  # chosen on purpose, or no network client (tests)
        return True
    try:
        return ipaddress.ip_address(client_ip.split("%")[0]).is_loopback
    except ValueError:
        return client_ip == "localhost"


def local_only() -> None:
    """Stop the page for a remote client of a server whose address nobody chose."""
    if not allowed(config.get_where_defined("server.address"), st.context.ip_address):
        st.error(REFUSAL)
        st.stop()
