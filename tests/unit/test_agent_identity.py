"""The agent's identity: a device id and an instance id kept in its state folder."""

from __future__ import annotations

from pathlib import Path

from monitor_agent.identity import instance_id, local_identity, stable_device_id


def test_instance_id_is_made_once_and_kept(tmp_path: Path) -> None:
    """The instance id is created at first start and read back unchanged afterwards."""
    first = instance_id(tmp_path)
    assert len(first) == 32 and instance_id(tmp_path) == first
    assert local_identity("dev", tmp_path).instance_id == first


def test_clones_sharing_hostname_and_machine_id_get_distinct_device_ids(tmp_path: Path) -> None:
    """Two fresh state folders on one machine (clones of one image) derive different device ids."""
    one, two = stable_device_id(tmp_path / "a"), stable_device_id(tmp_path / "b")
    assert one != two
    assert one.rsplit("-", 1)[0] == two.rsplit("-", 1)[0]  # same readable hostname part
    assert stable_device_id(tmp_path / "a") == one  # kept across restarts


def test_static_versions_match_the_project() -> None:
    """The agent's and the hub's ``__version__`` are the version pyproject.toml releases."""
    import tomllib

    import monitor_agent
    import monitor_server

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    assert monitor_agent.__version__ == monitor_server.__version__ == project["version"]
