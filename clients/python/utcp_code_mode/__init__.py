"""utcp_code_mode — drop-in Python client for the codemode engine.

The API of the `utcp_code_mode` library (CodeModeUtcpClient), stdlib only,
talking JSON-RPC to a codemode engine over its Unix socket.  Chains run in the
engine's kernel sandbox instead of in-process."""
from .client import ChainStream, CodeModeError, CodeModeUtcpClient, Record, ToolCallError

__all__ = ["CodeModeUtcpClient", "ChainStream", "CodeModeError", "ToolCallError", "Record"]
