"""How messages leave: one module per channel, each the only user of its library."""
