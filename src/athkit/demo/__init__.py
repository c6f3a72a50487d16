"""ATH Shop (a native-mode service) and the shopping agent, for ``athkit demo``."""
