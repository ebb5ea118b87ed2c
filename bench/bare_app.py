"""The baseline of `bench/api.py`: a bare `async def` FastAPI JSON endpoint."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/v1/authority")
async def authority() -> dict[str, object]:
    return {"authorized": True, "powers_of_attorney": [], "at": "2026-11-25T10:00:00Z"}
