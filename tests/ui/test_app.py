"""The app without a browser: building the Blocks, serving options, poster serving, start-up errors."""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import socket
import urllib.error
import urllib.parse
import urllib.request

import pytest

from fusionrec.ui.app import build_app, catalog_info, free_port, launch, parse_auth, poster_url, serve
from tests.conftest import make_config


def test_parse_auth():
    assert parse_auth("") is None
    assert parse_auth("ann:s3:cret") == ("ann", "s3:cret")
    for bad in ("ann", ":pw", "ann:"):
        with pytest.raises(ValueError, match="expected user:pass"):
            parse_auth(bad)


def test_free_port_is_bindable():
    port = free_port("127.0.0.1")
    assert 1024 <= port <= 65535  # a real ephemeral port, not 0 ("any port")
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # raises OSError when the port is taken
        assert s.getsockname() == ("127.0.0.1", port)


def test_poster_url_serves_only_registered_files(posters, tmp_path):
    from gradio.data_classes import _StaticFiles

    url = poster_url(str(posters / "50.jpg"))
    assert url == f"gradio_api/file={(posters / '50.jpg').resolve()}"
    assert (posters / "50.jpg").resolve() in _StaticFiles.all_paths
    assert posters.resolve() not in _StaticFiles.all_paths  # the file, not its folder
    assert poster_url(str(tmp_path / "missing.jpg")) is None


def test_build_app_has_the_parts_and_events(tiny_agent, ui_tiny_cfg):
    genres, (lo, hi) = catalog_info(tiny_agent)
    assert "Comedy" in genres and 1900 < lo < hi <= 1998
    demo = build_app(ui_tiny_cfg, tiny_agent)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"fr-chat", "fr-input", "fr-mic", "fr-new", "fr-cards", "fr-genres", "fr-constraints"} <= ids
    events = {t[1] for dep in demo.config["dependencies"] for t in dep["targets"]}
    assert {"submit", "stop_recording", "feedback", "click", "input", "release"} <= events
    assert demo.analytics_enabled is False


def test_serve_without_an_index_says_what_to_run(tiny_cfg, tmp_path, capsys):
    cfg = make_config("tiny", home=tmp_path)
    (tmp_path / "models").symlink_to(tiny_cfg.models_dir, target_is_directory=True)
    args = argparse.Namespace(host=None, port=0, auth=None)
    assert serve(cfg, args) == 2
    err = capsys.readouterr().err
    assert "fusionrec ingest" in err and "fusionrec chat --prepare" in err


def test_serve_refuses_a_malformed_auth(tiny_cfg, capsys):
    args = argparse.Namespace(host=None, port=0, auth="no-colon")
    assert serve(make_config("tiny"), args) == 2
    assert "expected user:pass" in capsys.readouterr().err


def test_launch_serves_locally_with_auth_and_the_queue_limit(tiny_agent, ui_tiny_cfg):
    port = free_port("127.0.0.1")
    demo = launch(ui_tiny_cfg, tiny_agent, "127.0.0.1", port, ("ann", "pw"))
    base = f"http://127.0.0.1:{port}"
    try:
        assert demo.server_name == "127.0.0.1" and demo.server_port == port
        assert demo._queue.default_concurrency_limit == ui_tiny_cfg.ui.concurrency
        with urllib.request.urlopen(base + "/", timeout=10) as resp:  # the login page
            assert resp.status == 200
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/config", timeout=10)
        assert err.value.code == 401
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

        def login(password: str) -> int:
            form = urllib.parse.urlencode({"username": "ann", "password": password}).encode()
            try:
                return opener.open(base + "/login", data=form, timeout=10).status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert login("wrong") >= 400
        assert login("pw") == 200
        with opener.open(base + "/config", timeout=10) as resp:
            config = json.load(resp)
        assert config["analytics_enabled"] is False and config["title"] == "FusionRec"
    finally:
        demo.close()


@pytest.mark.parametrize(
    ("overrides", "cores", "threads"),
    [
        ([], 2, 1),  # two turns at once on two cores: one thread each
        (["ui.concurrency=1"], 2, 2),
        (["ui.concurrency=3"], 16, 5),
        (["ui.concurrency=4"], 2, 1),
        (["agent.torch_threads=3"], 2, 3),  # set explicitly: kept
    ],
)
def test_serving_shares_the_cores_among_concurrent_turns(overrides, cores, threads):
    from fusionrec.ui.app import serving_threads

    assert serving_threads(make_config("tiny", overrides=overrides), cores) == threads
