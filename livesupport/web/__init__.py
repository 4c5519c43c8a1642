"""HTTP and WebSocket: thin handlers (parse, authorise, call the domain, reply), one route table
naming each route's authentication (``routes.py``), and ``make_app``."""
