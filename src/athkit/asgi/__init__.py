"""The ASGI ground that ``web/`` and ``oauth/`` both stand on: the app's service and its pages."""
