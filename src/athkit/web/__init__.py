"""ASGI adapters: ATH routers, the scope dependency, error rendering, pages."""
