"""The documentation describes exactly what was built.

These read the server's own tables (settings, routes, event types) from the module and check
them against config.example.ini, docs/PROTOCOL.md and the README.
"""

import configparser
import re
import subprocess
import sys

from conftest import ROOT

from livesupport.config import SETTINGS, load_config
from livesupport.protocol import COMMANDS, ERRORS, EVENTS
from livesupport.web.app import ROUTES

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
    expected = {(s.section, s.key): s.default for s in SETTINGS}
    assert documented == expected


def test_the_example_ini_uncommented_loads_and_changes_nothing(tmp_path):
    text = (ROOT / "config.example.ini").read_text()
    uncommented = re.sub(r"(?m)^# (\w+ =.*)$", r"\1", text)
    path = tmp_path / "all.ini"
    path.write_text(uncommented)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(uncommented)
    config = load_config(str(path))
    assert config.warnings == []
    default = load_config(None)
    for s in SETTINGS:
        assert config.get(s.section, s.key) == default.get(s.section, s.key), s


def test_every_api_route_is_in_the_protocol_doc():
    paths = [r.pattern for r in ROUTES if r.pattern.startswith("/api/") and r.pattern != "/api/.*"]
    assert len(paths) >= 20
    for pattern in paths:
        doc_path = pattern.replace("([^/]+)", "ID").replace("\\.", ".")
        assert doc_path in PROTOCOL, f"{doc_path} is missing from docs/PROTOCOL.md"


def test_every_event_and_command_type_is_in_the_protocol_doc():
    assert {"welcome", "message", "chat_accepted", "queue", "typing", "reset"} <= set(EVENTS)
    commands = {c for role in COMMANDS.values() for c in role}
    for name in sorted(set(EVENTS) | commands):
        assert f"`{name}`" in PROTOCOL, f"type {name} is missing from docs/PROTOCOL.md"


def test_every_error_code_is_in_the_protocol_doc_with_its_status():
    assert "too_long" in ERRORS and "chat_taken" in ERRORS
    for code, status in sorted(ERRORS.items()):
        assert f"`{code}` ({status})" in PROTOCOL, f"{code} ({status}) is not in docs/PROTOCOL.md"


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
