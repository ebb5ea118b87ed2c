"""The embedded default: everything a newcomer needs, made on first start under `./var`."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from api.auth import ROLES, read_keys
from epoa.demo_keys import DemoKeys, load_demo, make_demo
from epoa.settings import Settings
from epoa.wiring import DEV_SEAL_KEY, SettingsError, load_seal_key


@dataclass(frozen=True)
class DevMaterial:
    api_keys_path: Path | None
    api_keys: dict[str, str]
    demo: DemoKeys | None


def ensure_dev_material(
    settings: Settings, *, api_keys: bool = True
) -> tuple[Settings, DevMaterial | None]:
    """Fill unset settings with development values under `var_dir`; never in production.
    `api_keys=False` for a command that serves no API: its keys file is neither made nor
    read."""
    if settings.env == "production":
        return settings, None
    var = settings.var_dir
    var.mkdir(parents=True, exist_ok=True)
    updates: dict[str, object] = {}
    demo = None
    if settings.trusted_ca is None:
        demo_dir = var / "demo"
        demo = load_demo(demo_dir) if (demo_dir / "people.json").exists() else make_demo(demo_dir)
        updates["trusted_ca"] = demo.ca_pem
    if not api_keys:
        return settings.model_copy(update=updates), DevMaterial(None, {}, demo)
    keys_path = settings.api_keys or var / "api-keys.json"
    if settings.api_keys is None:
        if not keys_path.exists():
            keys = {f"dev-{role}-{secrets.token_urlsafe(12)}": role for role in ROLES}
            keys_path.write_text(json.dumps(keys, indent=2) + "\n")
            keys_path.chmod(0o600)
        updates["api_keys"] = keys_path
    try:
        known = read_keys(keys_path)
    except ValueError as error:
        raise SettingsError(str(error)) from None
    return settings.model_copy(update=updates), DevMaterial(keys_path, known, demo)


def banner(settings: Settings, material: DevMaterial | None, url: str) -> str:
    """What `epoa serve` prints at start: the store, and in development every value it
    took under `var_dir` for a setting left unset (contract, section 7)."""
    lines = [f"epoa: store {settings.database_url}", f"epoa: API docs at {url}/docs"]
    if material is not None:
        if settings.seal_key is None:
            key_id = load_seal_key(settings).key_id.hex()
            lines.append(
                f"epoa: DEVELOPMENT seal key {settings.var_dir / DEV_SEAL_KEY} (key id {key_id})"
            )
        lines.append(f"epoa: DEVELOPMENT mode: API keys in {material.api_keys_path}:")
        lines += [f"         {role:8} {key}" for key, role in material.api_keys.items()]
        if material.demo is not None:
            lines.append(
                f"epoa: trusting the DEMO CA {material.demo.ca_pem} (never in production); "
                f"demo signing keys (password 'demo') in {material.demo.directory}"
            )
    return "\n".join(lines)
