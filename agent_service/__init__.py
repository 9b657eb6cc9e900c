"""The Firebox agent service: sessions, streaming runs, the tool loop, Execute forwarding."""
