"""OAuth 2.0 pieces. Native mode: the service's own authorization endpoint and consent page."""
