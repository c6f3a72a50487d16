from fastapi import FastAPI
from mcp.server.fastmcp import Context, FastMCP

from athkit.integrations.mcp import mount_mcp, token_info
from athkit.native import ATH, ApprovalPolicy

app, mcp, NOTES = FastAPI(), FastMCP("Notes"), {"bob": ["buy milk"]}
ath = ATH(app, current_user=lambda req: req.cookies.get("notes_user"), provider_id="notes",
          scopes={"notes:read": "Read your notes", "notes:write": "Add notes"},
          policy=ApprovalPolicy(auto_approve=True))  # public_url: ATHKIT_PUBLIC_URL

@mcp.tool()
def list_notes(ctx: Context) -> list[str]:  # the tool sees the caller's TokenInfo
    return NOTES.get(token_info(ctx).user_id, [])

@mcp.tool()
def add_note(text: str, ctx: Context) -> str:
    return NOTES.setdefault(token_info(ctx).user_id, []).append(text) or "saved"

mount_mcp(app, ath, mcp, tool_scopes={"list_notes": ["notes:read"], "add_note": ["notes:write"]})
