"""Code both services use: errors, logging, server wiring, auth, secret handling."""
