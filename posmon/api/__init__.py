"""The operator's HTTP control API over the daemon's ``Control`` object, and the client the CLI uses.

Start it inside the daemon's nursery::

    api = ApiSettings.from_config(settings.api, os.environ)
    app = create_app(control, metrics_render=render, token=api.token or None,
                     health_timeout_seconds=api.health_timeout_seconds)
    url = await nursery.start(serve_api, app, api)  # None when [api] enabled = false
"""

from posmon.api.app import create_app
from posmon.api.server import serve_api
from posmon.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app", "serve_api"]
