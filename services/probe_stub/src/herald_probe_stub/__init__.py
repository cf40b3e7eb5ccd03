"""herald's local stand-in of the external send API, with fault injection and a request log."""
