"""herald's benchmark: the whole system as processes, measured run by run (``make bench``)."""
