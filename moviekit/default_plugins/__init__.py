"""Generic first-party components, registered as default plugins like any other."""
