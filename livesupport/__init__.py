"""Cute Live Support: the server, as one package in layers (see ``cutelive.py`` for the map).

Importing the package does nothing but define names; ``livesupport.cli.main`` runs it.
"""

__version__ = "0.1.0"

#: The layers, bottom first. A module may import only from its own layer and those before it
#: (``tests/test_layers.py`` walks every import). Each entry is a module, or a package whose
#: modules form one layer.
LAYERS: list[str] = [
    "clock",
    "config",
    "protocol",
    "storage",
    "hub",
    "cluster",
    "guards",
    "context",
    # The domain, one module per subject, each importing only the subjects before it.
    "accounts",
    "presence",
    "departments",
    "canned",
    "site",
    "mail",
    "outbox",
    "enrichment",
    "monitor",
    "invitations",
    "chats",
    "handover",
    "transcripts",
    "offline",
    "followup",
    "routing",
    "transfers",
    "direct",
    "receipts",
    "files",
    "streams",
    "commands",
    "services",
    # Transports and the entry point.
    "web",
    "cli",
]
