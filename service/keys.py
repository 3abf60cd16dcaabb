"""Manage the API keys file: `python -m service.keys add --tenant acme --file keys.json`.

add     generate a key for a tenant, print it once (stdout), store only its sha256 hash
list    tenants and the fingerprints of their keys (never the keys)
remove  drop one key (by fingerprint) or every key of a tenant

The server reads the same file (--api-keys-file / FINESERVE_API_KEYS_FILE) and picks up changes within
seconds. For Kubernetes, create the Secret from the file: the raw keys never enter it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from service.auth import KeysFileError, fingerprint, hash_key, new_key, read_keys_file, write_keys_file
from service.tenancy import TENANT_NAME


def _load(path: Path, must_exist: bool) -> dict[str, list[str]]:
    if not path.exists():
        if must_exist:
            raise KeysFileError(f"{path} does not exist")
        return {}
    return read_keys_file(path)


def main(argv: list[str] | None = None) -> int:
    env_file = os.environ.get("FINESERVE_API_KEYS_FILE")
    p = argparse.ArgumentParser(prog="python -m service.keys", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("add", "list", "remove"):
        s = sub.add_parser(name)
        s.add_argument("--file", type=Path, required=env_file is None, default=env_file,
                       help="keys file (default: $FINESERVE_API_KEYS_FILE)")
        if name != "list":
            s.add_argument("--tenant", required=True)
        if name == "remove":
            s.add_argument("--fingerprint", help="remove only this key (default: every key of the tenant)")
    a = p.parse_args(argv)
    path = Path(a.file)
    try:
        if a.command == "add":
            if not TENANT_NAME.match(a.tenant):
                raise KeysFileError(f"tenant {a.tenant!r} must match {TENANT_NAME.pattern}")
            keys = _load(path, must_exist=False)
            key = new_key()
            keys.setdefault(a.tenant, []).append(hash_key(key))
            write_keys_file(path, keys)
            print(key)
            print(f"added key {fingerprint(hash_key(key))} for tenant {a.tenant!r} to {path}; "
                  "the key is shown only this once", file=sys.stderr)
        elif a.command == "list":
            for tenant, hashes in sorted(_load(path, must_exist=True).items()):
                print(f"{tenant}\t{' '.join(fingerprint(h) for h in hashes) or '-'}")
        else:
            keys = _load(path, must_exist=True)
            hashes = keys.get(a.tenant, [])
            kept = [h for h in hashes if a.fingerprint and fingerprint(h) != a.fingerprint]
            if len(kept) == len(hashes):
                raise KeysFileError(f"no matching key for tenant {a.tenant!r}")
            if kept:
                keys[a.tenant] = kept
            else:
                keys.pop(a.tenant, None)
            write_keys_file(path, keys)
            print(f"removed {len(hashes) - len(kept)} key(s) of tenant {a.tenant!r}", file=sys.stderr)
    except KeysFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
