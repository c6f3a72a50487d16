from fastapi import Depends, FastAPI, Request

from athkit.native import ATH, ApprovalPolicy, TokenInfo, require_scopes

app = FastAPI()


def current_user(request: Request) -> str | None:  # your app's own sign-in lookup goes here
    return request.cookies.get("notes_user")


ath = ATH(app, current_user=current_user, provider_id="notes",  # public_url: ATHKIT_PUBLIC_URL
          scopes={"notes:read": "Read your notes"}, policy=ApprovalPolicy(auto_approve=True))


@app.get("/api/notes")
def notes(token: TokenInfo = Depends(require_scopes("notes:read"))) -> dict[str, object]:
    return {"user": token.user_id, "notes": ["buy milk"]}
