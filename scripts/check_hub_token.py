"""Fail fast, before a long training run, when the Hub token in HF_TOKEN cannot publish to a repo.

    HF_TOKEN=hf_... python scripts/check_hub_token.py NAME/REPO

Like `hf auth whoami`, through huggingface_hub only (no torch: it runs before the heavy install): the token must be
set, accepted by the Hub (HF_ENDPOINT, default huggingface.co), not read-only, and NAME must be its user or one of its
organizations. Exit code 0 when it can publish, 1 otherwise, with a message (GitHub annotation format) that never
contains the token.
"""

from __future__ import annotations

import argparse
import os
import sys


def fail(message: str) -> int:
    print(f"::error::{message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check that HF_TOKEN can publish to a Hub repo (before training).")
    parser.add_argument("repo_id", metavar="NAME/REPO", help="the repo the model will be published to")
    args = parser.parse_args(argv)
    token = os.environ.get("HF_TOKEN", "").strip()
    if not token:
        return fail("HF_TOKEN is empty: add a write token as the repository secret HF_TOKEN (Settings > Secrets > Actions).")
    namespace, _, name = args.repo_id.partition("/")
    if not namespace or not name or "/" in name:
        return fail(f"repo id {args.repo_id!r} is not NAME/REPO.")

    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    try:
        info = HfApi(token=token).whoami()
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", "?")
        return fail(f"the Hub at {constants.ENDPOINT} rejected HF_TOKEN (HTTP {status}): create a new write token.")
    user = info.get("name")
    role = ((info.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        return fail(f"HF_TOKEN of {user} is read-only: publishing needs a write token.")
    owners = {user, *(org.get("name") for org in info.get("orgs") or [])}
    if namespace not in owners:
        return fail(
            f"HF_TOKEN belongs to {user}, who cannot write to {namespace!r} (the user or its organizations: {sorted(filter(None, owners))})."
        )
    print(f"HF_TOKEN: {user} ({role or 'unknown'} token) can publish to {args.repo_id} on {constants.ENDPOINT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
