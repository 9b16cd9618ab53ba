"""dcm.api: the FastAPI service (OGC API – Features layers, alerts, gaps, uploads, map).

::

    from dcm.api import create_app
    app = create_app(Settings(data_dir="/srv/dcm"))   # or `dcm serve`
"""

from dcm.api.app import create_app

__all__ = ["create_app"]
