"""herald's shared library: what every service agrees on."""
