"""Typed clients for the Firebox agent and executor services.

    from firebox.client import FireboxClient
    with FireboxClient() as client:              # FIREBOX_* env, else 127.0.0.1 defaults
        ws = client.create_workspace("demo")
        result = client.run(ws.id, script="echo hi")
        print(result.exit_code, result.stdout)

`AsyncFireboxClient` has the same methods as coroutines and async iterators. Failed calls raise
`FireboxRpcError` carrying the gRPC status code and the server's message.
"""

from firebox.client.aio import AsyncFireboxClient, run_events
from firebox.client.errors import FireboxRpcError
from firebox.client.execution import ExecCall, ExecResult
from firebox.client.settings import ConnectionSettings, SettingsError
from firebox.client.sync import FireboxClient, SyncExecCall, SyncStream

__all__ = [
    "AsyncFireboxClient",
    "ConnectionSettings",
    "ExecCall",
    "ExecResult",
    "FireboxClient",
    "FireboxRpcError",
    "SettingsError",
    "SyncExecCall",
    "SyncStream",
    "run_events",
]
