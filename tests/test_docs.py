"""The documentation describes exactly what was built.

These read the server's own tables (settings, routes, event types) from the module and check
them against config.example.ini, docs/PROTOCOL.md and the README.
"""

import configparser
import queue
import re
import shlex
import subprocess
import sys
import threading
import time

from conftest import ROOT, SERVER_CMD

from livesupport.config import SETTINGS, load_config
from livesupport.protocol import COMMANDS, ERRORS, EVENTS
from livesupport.web.app import ROUTES

PROTOCOL = (ROOT / "docs" / "PROTOCOL.md").read_text()
README = (ROOT / "README.md").read_text()


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


def _readme_blocks(heading: str) -> list[tuple[str, str]]:
    """The fenced blocks of the README's section ``heading``: (language, text) each."""
    start = README.index(f"\n## {heading}\n")
    end = README.find("\n## ", start + 1)
    section = README[start : end if end > 0 else None]
    return re.findall(r"(?ms)^```(\w*)\n(.*?)^```$", section)


def _readme_command(heading: str) -> str:
    """The one command of the first ``sh`` block in the README's section ``heading``."""
    block = next(text for lang, text in _readme_blocks(heading) if lang == "sh")
    lines = block.strip().splitlines()
    assert len(lines) == 1, f"the {heading} block should be one command: {lines}"
    return lines[0]


def _ci_readme_commands() -> dict[str, str]:
    """The README commands as .ci/run spells them (its ``readme_*_command=...`` lines)."""
    found = {}
    for line in (ROOT / ".ci" / "run").read_text().splitlines():
        m = re.fullmatch(r"(readme_\w+_command)=(.+)", line)
        if m:
            (found[m.group(1)],) = shlex.split(m.group(2))
    return found


def test_ci_runs_the_readme_commands_word_for_word():
    start, tests = _readme_command("Quick start"), _readme_command("Development")
    # On Debian's own Python (no pip outside a virtual environment), word for word.
    for command in (start, tests):
        assert command.startswith("python3 -m venv .venv && .venv/bin/pip install -r "), command
    assert "apt-get install python3-venv" in README
    assert _ci_readme_commands() == {
        "readme_start_command": start,
        "readme_test_command": tests,
    }
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'setsid bash -c "$readme_start_command" &' in ci
    assert "http://127.0.0.1:8080/api/status" in ci
    assert '\nbash -c "$readme_test_command"\n' in ci
    assert 'export PATH="/usr/bin:$PATH"' in ci  # python3 is Debian's /usr/bin/python3


def _log_line(line: str) -> str:
    """A log line without what differs between two starts: the time, the port, the setup
    token and where the current directory is."""
    line = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", "", line.rstrip("\n"))
    line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", line)
    line = re.sub(r"setup token \S+$", "setup token TOKEN", line)
    return re.sub(r"(?<= )/(?:[^\s/]+/)*(?=cutelive-data/)", "/.../", line)


def test_the_readme_sample_log_is_what_a_first_start_prints(tmp_path):
    """The quick start's sample log, line by line, against a first start as the README runs
    it: no configuration, a fresh current directory (``--port 0`` only, as 8080 may be taken)."""
    (sample,) = [
        text for lang, text in _readme_blocks("Quick start") if not lang and "listening" in text
    ]
    expected = [_log_line(line) for line in sample.strip().splitlines()]
    assert "database created at schema version" in expected[0]
    assert expected[-1].endswith("setup token TOKEN")

    proc = subprocess.Popen(
        SERVER_CMD + ["--port", "0"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()
    printed: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while len(printed) < len(expected) and time.monotonic() < deadline:
            try:
                printed.append(_log_line(lines.get(timeout=0.5)))
            except queue.Empty:
                assert proc.poll() is None, printed
    finally:
        proc.terminate()
        proc.wait(15)
    assert printed == expected
    assert (tmp_path / "cutelive-data" / "cutelive.db").exists()
