#!/usr/bin/env python3
"""Cute Live Support: a self-hosted live-support chat appliance.

One Tornado process and one SQLite file by default; PostgreSQL and Redis when several
processes serve one site. Visitors chat from a widget on the customer's site; operators answer
in the built-in console. Events travel over WebSocket or long-poll with persisted per-chat
sequence numbers, so nothing is lost across reconnects and restarts.

This file is the one entry point: ``python3 cutelive.py`` from source, and the single
executable that ``build.spec`` freezes from it. The code lives in the package ``livesupport/``
(a package named ``cutelive/`` would shadow this script), in layers. A module imports only
from its own layer and those above it in this list (``livesupport.LAYERS``; a test checks
every import):

1. ``clock``    time and timers, handed to everything (tests hand in a fake one)
2. ``config``   paths, the table of settings, the ini overlay and CLI flags
3. ``protocol`` what crosses the wire: errors and their builders, parties, field checks,
                commands with their schemas, appearance defaults and limits, close codes
4. ``storage/`` the only gateway to the database: schema and migrations (with the one SQL
                dialect section), plain records, and a store per subject (accounts, chats,
                traffic, site, departments, canned, direct, files with their bytes);
                every method awaitable; SQLite or PostgreSQL
5. ``hub``      publish/subscribe to the open streams; ``Signal`` for domain announcements
   ``cluster``  the same between processes through Redis (``[cluster] redis_url``): notices,
                shared presence, the lease for what runs once, requests to one process
6. ``guards``   rate limits, the open-file guard, event-loop lag
7. ``context``  what every domain object is built with: config, storage, hub, clock
8. the domain, one module per subject, each receiving the context and its peers:
   ``accounts``    visitor tokens, operators, passwords, logins, sessions
   ``presence``    who is online, grace after a disconnect
   ``departments`` departments, their members, availability site-wide and per department
   ``canned``      canned replies: personal, shared, per department; who may use and manage
   ``site``        console-edited settings, the public widget configuration
   ``mail``        the e-mail the server writes, handed to the SMTP server
   ``outbox``      every e-mail stored, then sent with retries until the SMTP server takes it
   ``enrichment``  browser, OS, device, country, search terms of a visit
   ``monitor``     live traffic: visits, page views, the consoles' visitor list
   ``invitations`` invitations to chat, automatic rules
   ``chats``       starting, queue, accepting, messages, typing, closing, pending chats
   ``handover``    an operator's chats when it goes: handed over, or kept pending
   ``transcripts`` reading conversations: transcripts, the console's lists
   ``offline``     messages left while nobody was online
   ``followup``    after the live part: reply e-mails with links, transcripts, ratings
   ``routing``     each operator's queue, automatic assignment, escalation, queue position
   ``transfers``   transfers between operators and departments, internal notes
   ``direct``      direct messages between operators: a sequence per pair, read cursors
   ``receipts``    delivered and read cursors of a chat's two parties
   ``files``       uploads in pieces, the type from the content, signed expiring links
   ``streams``     attach, welcome, replay by cursors, long-poll connections
   ``commands``    the table of commands each party may send, dispatch
   ``services``    the composition root: builds and wires the above, the tick
9. ``web/``     thin handlers, one route table naming each route's authentication,
                ``make_app``
10. ``cli``     subcommands, ``serve`` and ``main()``

A new feature goes where its subject is: a new table and its SQL in ``storage/``, its wire
format in ``protocol``, its behaviour in a domain module of its own (wired in ``services``),
its routes in ``web/``.
"""

import gc
import sys

# Start-up allocates tens of thousands of objects (modules, classes, functions, tables) and
# hardly any garbage, yet the collector would walk them again and again while the modules load:
# a fifth of the time to the first answer (measured). So it is off until the command starts:
# ``serve`` then freezes what start-up made and turns it on (livesupport/cli.py).
gc.disable()

from livesupport.cli import main

if __name__ == "__main__":
    sys.exit(main())
