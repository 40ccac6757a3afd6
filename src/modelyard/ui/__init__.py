"""The dashboard: every model, deployment, rollout, drift signal and logged request in a
browser, under ``/ui`` of ``modelyard serve`` or alone with ``modelyard ui``.

``create_app(settings)`` is the ASGI app; ``app`` its routes, ``session`` who may use
it, ``context`` the stores it reads, ``data`` what each page shows, ``static`` the page.
"""

from modelyard.ui.app import create_app

__all__ = ["create_app"]
