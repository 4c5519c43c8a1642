"""The documentation describes exactly what was built.

These read the server's own tables (settings, routes, event types) from the module and check
them against config.example.ini, docs/PROTOCOL.md and the README.
"""

import configparser
import re
import subprocess
import sys

from conftest import ROOT

import cutelive  # noqa: E402  (conftest puts nothing on the path; tests run from the root)

PROTOCOL = (ROOT / "docs" / "PROTOCOL.md").read_text()


def _example_ini() -> dict[tuple[str, str], str]:
    """The commented-out ``# key = value`` lines of config.example.ini, by section."""
    found = {}
    section = None
    for line in (ROOT / "config.example.ini").read_text().splitlines():
        m = re.fullmatch(r"\[(\w+)\]", line.strip())
        if m:
            section = m.group(1)
            continue
        m = re.fullmatch(r"# (\w+) =(?: (.*))?", line)
        if m and section:
            found[(section, m.group(1))] = (m.group(2) or "").strip()
    return found


def test_every_setting_is_in_the_example_ini_at_its_default():
    documented = _example_ini()
    expected = {(s.section, s.key): s.default for s in cutelive.SETTINGS}
    assert documented == expected


def test_the_example_ini_uncommented_loads_and_changes_nothing(tmp_path):
    text = (ROOT / "config.example.ini").read_text()
    uncommented = re.sub(r"(?m)^# (\w+ =.*)$", r"\1", text)
    path = tmp_path / "all.ini"
    path.write_text(uncommented)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(uncommented)
    config = cutelive.load_config(str(path))
    assert config.warnings == []
    default = cutelive.load_config(None)
    for s in cutelive.SETTINGS:
        assert config.get(s.section, s.key) == default.get(s.section, s.key), s


def _route_paths() -> list[str]:
    table = cutelive.routes.__code__.co_consts
    return [c for c in table if isinstance(c, str) and c.startswith("/api/") and c != "/api/.*"]


def test_every_api_route_is_in_the_protocol_doc():
    paths = _route_paths()
    assert len(paths) >= 20
    for pattern in paths:
        doc_path = pattern.replace("([^/]+)", "ID").replace("\\.", ".")
        assert doc_path in PROTOCOL, f"{doc_path} is missing from docs/PROTOCOL.md"


def test_every_event_and_command_type_is_in_the_protocol_doc():
    src = (ROOT / "cutelive.py").read_text()
    emitted = set(re.findall(r'"type": "(\w+)"', src))
    assert {"welcome", "message", "chat_accepted", "queue", "typing", "reset"} <= emitted
    commands = {c for role in cutelive.COMMANDS.values() for c in role}
    for name in sorted(emitted | commands):
        assert f"`{name}`" in PROTOCOL, f"type {name} is missing from docs/PROTOCOL.md"


def test_every_error_code_is_in_the_protocol_doc():
    src = (ROOT / "cutelive.py").read_text()
    codes = set(re.findall(r'ApiError\(\s*"(\w+)"', src))
    codes |= set(cutelive._HTTP_CODES.values()) - {"bad_request", "method_not_allowed"}
    assert "too_long" in codes and "chat_taken" in codes
    for code in sorted(codes):
        assert f"`{code}`" in PROTOCOL, f"error code {code} is missing from docs/PROTOCOL.md"


def test_readme_commands_and_sections():
    readme = (ROOT / "README.md").read_text()
    for heading in ("Quick start", "Embed", "Configuration", "Development", "Building"):
        assert re.search(rf"(?m)^#+ .*{heading}", readme), heading
    assert "python3 cutelive.py" in readme
    assert "pip install -r requirements-test.txt" in readme
    # Every runtime dependency is named (and justified) in the README.
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        dep = re.split(r"[<>=\[ ]", line.strip(), maxsplit=1)[0]
        if dep and not dep.startswith("#"):
            assert dep in readme, f"{dep} is not explained in the README"


def test_help_lists_the_subcommands():
    out = subprocess.run(
        [sys.executable, str(ROOT / "cutelive.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    for cmd in ("serve", "create-operator", "passwd", "--version"):
        assert cmd in out
