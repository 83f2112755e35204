"""A real WebSub hub on 127.0.0.1 for the end-to-end test and bench/push.py: flask-websub's.

Run as `python tests/websub_hub.py STATE_FOLDER`; it prints `listening <url>` once it
accepts requests and runs until killed. Celery runs in eager mode (no broker): a publish ping
makes the hub fetch the topic and deliver it to each subscriber inside that request, which
is what a test wants and a production hub would not do. A subscriber's `hub.secret` makes
the hub sign each delivery (`X-Hub-Signature: sha512=…`).
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(state: Path) -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    from celery import Celery
    from flask import Flask
    from flask_websub.hub import Hub, SQLite3HubStorage
    from werkzeug.serving import make_server

    celery = Celery("hub")
    celery.conf.update(task_always_eager=True, task_eager_propagates=True, broker_url="memory://")
    app = Flask("websub-hub")
    app.config["PUBLISH_SUPPORTED"] = True
    hub = Hub(SQLite3HubStorage(str(state / "hub.sqlite3")), celery, **app.config)
    app.register_blueprint(hub.build_blueprint(url_prefix="/hub"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"listening http://127.0.0.1:{server.server_port}/hub", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
