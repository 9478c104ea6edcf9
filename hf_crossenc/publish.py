"""Publishing a trained model folder to the Hugging Face Hub: `publish_folder` (the `hf-crossenc publish` command calls it).

Everything that can be checked locally is checked before the first request (`check_can_publish`, `validate_folder`):
the repo id, offline mode, a token, the folder (`config.json`, every safetensors file to upload readable and as long
as its header says, no pickle files) and the card that will be uploaded (README.md with the repo id set into its
snippets, parsed as the Hub would). The folder is then uploaded in ONE commit with `HfApi.upload_folder`. The folder
is never changed, whether publishing fails or succeeds: when the card needs the repo id, the upload reads a temporary
staging folder (links to the folder's files plus the rewritten README.md) instead. Training leftovers
(`checkpoint-*` folders, hidden files) are never uploaded; the TensorBoard traces of ``--report_to tensorboard``
(`runs/`) only with ``include_logs=True`` (the Hub shows them in the model's Training metrics tab).

Endpoint and token follow the `huggingface_hub` conventions: `HF_ENDPOINT` (read when
`huggingface_hub` is imported), and the token passed in, else `HF_TOKEN`, else the one saved by
`hf auth login`. The token is never logged, printed or included in an error message.

Retries. Transient failures (connection errors, timeouts, HTTP 408/429/5xx) are retried with
exponential backoff (`backoff * 2**attempt` seconds); other HTTP 4xx errors are not. The commit
itself needs more care, because `upload_folder` (with `hf_xet` installed) retries the commit POST
internally (1, 2, 4, 8, 8 s) on 5xx and dropped connections, so a commit that landed but whose
response was lost would be sent twice. Every upload attempt therefore passes
``parent_commit=<head seen before the attempt>``: a replayed commit is refused by the Hub (HTTP 412)
instead of creating a duplicate. After any failed attempt the head is read again and the folder is
re-uploaded on top of it; files already committed are skipped by the client (their oid is
unchanged), so a commit that did land is not repeated. With `create_pr`, a retry reuses the pull
request opened by the failed attempt (found by its title) instead of opening a second one.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import os
import re
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .errors import UserInputError

logger = logging.getLogger(__name__)

T = TypeVar("T")

LOG_PATTERNS = ("runs/**",)
"""The TensorBoard traces (``--report_to tensorboard`` writes OUTPUT_DIR/runs/): uploaded only with ``include_logs``."""
IGNORE_PATTERNS = ("checkpoint-*", "checkpoint-*/**", *LOG_PATTERNS, "rounds/**", "soup/**", "teacher/**", ".*")
"""Not uploaded: Trainer checkpoints, tensorboard logs (unless ``include_logs``), earlier distillation rounds, the other
members of a seed soup, the fine-tuned bi-encoder teacher, hidden files (`.git`, ...)."""

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle")
RETRY_STATUS = (408, 429)  # plus every 5xx
CONFLICT_STATUS = 412  # "a commit has happened since": retried after reading the new head
BACKOFF_ENV = "HF_CROSSENC_PUBLISH_BACKOFF"
DEFAULT_COMMIT_MESSAGE = "Upload cross-encoder with hf-crossenc"


def ignore_patterns(include_logs: bool = False) -> list[str]:
    """The patterns `publish_folder` leaves out: `IGNORE_PATTERNS`, without `LOG_PATTERNS` when logs are included."""
    return [pattern for pattern in IGNORE_PATTERNS if not (include_logs and pattern in LOG_PATTERNS)]


class PublishError(UserInputError):
    """Publishing cannot proceed: a bad model folder or README, missing/invalid credentials, a refused request."""


@dataclass
class PublishResult:
    """What `publish_folder` did. `changed` is False when the Hub already had these exact files."""

    repo_url: str
    commit_url: str
    commit_oid: str
    pr_url: str | None
    changed: bool


# --------------------------------------------------------------------------- local validation


def _is_checkpoint_path(rel: Path) -> bool:
    return fnmatch.fnmatch(rel.parts[0], "checkpoint-*") or rel.parts[0] in ("rounds", "soup", "teacher")


def validate_folder(folder: str | Path, include_logs: bool = False) -> Path:
    """Check a model folder before anything is sent; returns it as a Path. Raises `PublishError`.

    Every safetensors file that would be uploaded (``include_logs``: the same choice as `publish_folder`'s) must be
    readable and complete (`safetensors_problem`)."""
    path = Path(folder)
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise PublishError(f"model folder {path} {what}. Pass the folder written by training (it holds config.json and model.safetensors).")
    if not (path / "config.json").is_file():
        raise PublishError(f"model folder {path} has no config.json: it is not a transformers model folder.")
    _check_weights(path)
    for rel in upload_files(path, ignore_patterns(include_logs)):
        if rel.endswith(".safetensors"):
            problem = safetensors_problem(path / rel)
            if problem is not None:
                raise PublishError(f"{path / rel} cannot be published: {problem}. Save the model again (save_pretrained()).")
    pickles = sorted(
        rel.as_posix()
        for rel in (p.relative_to(path) for p in path.rglob("*") if p.is_file())
        if rel.suffix.lower() in PICKLE_SUFFIXES and not _is_checkpoint_path(rel)
    )
    if pickles:
        shown = ", ".join(pickles[:5]) + (f" (and {len(pickles) - 5} more)" if len(pickles) > 5 else "")
        raise PublishError(
            f"model folder {path} contains pickle files: {shown}. Pickle files can run arbitrary code when loaded, "
            "so they are never published: keep the weights in model.safetensors (save_pretrained writes safetensors "
            "by default) and delete or move the pickle files. Only checkpoint-* folders may hold them (they are not uploaded)."
        )
    readme = path / "README.md"
    if readme.is_file():
        validate_readme(readme)
    return path


def _check_weights(path: Path) -> None:
    if (path / "model.safetensors").is_file():
        return
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise PublishError(f"{index} is not a valid safetensors index (needs a 'weight_map' object): {err}") from err
        missing = [s for s in shards if not (path / s).is_file()]
        if not shards or missing:
            raise PublishError(f"{index} lists weight shards that are missing from {path}: {', '.join(missing) or '(none listed)'}.")
        return
    shards = sorted(p.name for p in path.glob("model-*.safetensors"))
    hint = f" Found shards {', '.join(shards)} but no model.safetensors.index.json." if shards else ""
    raise PublishError(
        f"model folder {path} has no safetensors weights (model.safetensors, or model-*.safetensors shards with "
        f"model.safetensors.index.json).{hint} Save the model with save_pretrained()."
    )


def upload_files(folder: Path, ignore: list[str]) -> list[str]:
    """The files of `folder` (relative POSIX paths) that `upload_folder` sends with these ignore patterns."""
    from huggingface_hub.hf_api import DEFAULT_IGNORE_PATTERNS
    from huggingface_hub.utils import filter_repo_objects

    rels = sorted(p.relative_to(folder).as_posix() for p in folder.glob("**/*") if p.is_file())
    return list(filter_repo_objects(rels, ignore_patterns=[*ignore, *DEFAULT_IGNORE_PATTERNS]))


def safetensors_problem(path: Path) -> str | None:
    """Why `path` is not a complete safetensors file (cut off, or not safetensors at all), or None if it is."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > size - 8:
                return f"its header needs {header_len} bytes but the file has {size} (truncated, or not a safetensors file)"
            header = json.loads(f.read(header_len))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except OSError as err:
        return f"it cannot be read ({err.strerror or err})"
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, struct.error):
        return "its safetensors header is unreadable (truncated, or not a safetensors file)"
    expected = 8 + header_len + end
    if size != expected:
        return f"it is {size} bytes long but its header says {expected} (truncated or damaged)"
    return None


def validate_readme(readme: str | Path) -> dict[str, Any]:
    """Parse the YAML front matter of a model card locally, as the Hub would; returns the metadata."""
    readme = Path(readme)
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PublishError(f"cannot read {readme}: {err}") from err
    return validate_card_text(text, readme)


def validate_card_text(text: str, readme: str | Path) -> dict[str, Any]:
    """`validate_readme` for a card's text (`readme` names it in the messages); returns the metadata."""
    import yaml
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    match = REGEX_YAML_BLOCK.search(text)
    if match is None:
        if re.match(r"\s*---[ \t]*\r?\n", text):
            raise PublishError(f"README.md ({readme}): the YAML front matter starts with '---' but is never closed by a '---' line.")
        return {}
    try:
        data = yaml.safe_load(match.group(2))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1 + match.group(1).count(chr(10))}, column {mark.column + 1}" if mark is not None else ""
        parts = [getattr(err, "context", None), getattr(err, "problem", None)]
        problem = ": ".join(str(x) for x in parts if x) or " ".join(str(err).split())
        raise PublishError(
            f"README.md ({readme}) has invalid YAML front matter{where}: {problem}. "
            "Fix the metadata block between the '---' lines (the Hub would reject it)."
        ) from err
    if data is not None and not isinstance(data, dict):
        raise PublishError(f"README.md ({readme}): the YAML front matter must be a mapping (key: value lines), got {type(data).__name__}.")
    try:
        ModelCard(text, ignore_metadata_errors=False)
    except Exception as err:  # the card's metadata is not understood by huggingface_hub (e.g. bad model-index)
        raise PublishError(f"README.md ({readme}) has invalid model card metadata: {err}") from err
    return data or {}


# --------------------------------------------------------------------------- errors and retries


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level errors worth retrying, from whichever httpx flavour the client uses."""
    classes: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name in ("httpx2", "httpx"):  # huggingface_hub 2.x uses `httpx2`, 1.x `httpx`
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        classes += [getattr(module, name) for name in ("TimeoutException", "NetworkError", "RemoteProtocolError") if hasattr(module, name)]
    return tuple(classes)


def _status(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def is_transient(err: BaseException) -> bool:
    """True for errors a retry may fix: connection errors/timeouts, HTTP 408, 429 and 5xx."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(err, OfflineModeIsEnabled):
        return False
    status = _status(err)
    if status is not None:
        return status >= 500 or status in RETRY_STATUS
    return isinstance(err, _transport_errors())


def describe_error(err: BaseException) -> str:
    """A one-line description of a client error (HTTP status + server message, or the exception)."""
    status = _status(err)
    if status is not None:
        message = getattr(err, "server_message", None) or str(err).splitlines()[0]
        return f"HTTP {status}: {' '.join(str(message).split())}"
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def call_with_retries(
    fn: Callable[[], T],
    *,
    what: str,
    max_attempts: int = 5,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    retry_if: Callable[[BaseException], bool] = is_transient,
    redact: Callable[[str], str] = lambda text: text,
) -> T:
    """Call `fn`; on an error `retry_if` accepts, wait `backoff * 2**attempt` s and try again (max `max_attempts` calls)."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")
    for attempt in range(max_attempts):
        try:
            return fn()
        except Exception as err:
            if not retry_if(err):
                raise
            if attempt + 1 >= max_attempts:
                logger.warning("%s failed (%s); giving up after %d attempts.", what, redact(describe_error(err)), max_attempts)
                raise
            delay = backoff * 2**attempt
            logger.warning(
                "%s failed (%s); retrying in %.2f s (attempt %d of %d).",
                what,
                redact(describe_error(err)),
                delay,
                attempt + 2,
                max_attempts,
            )
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _redactor(token: str | None) -> Callable[[str], str]:
    def redact(text: str) -> str:
        return text.replace(token, "hf_***") if token else text

    return redact


def _auth_help(endpoint: str) -> str:
    return (
        "Publishing needs a Hugging Face access token with write access to the target namespace. "
        f"Create one at {endpoint}/settings/tokens, then either export it as HF_TOKEN "
        "(e.g. `export HF_TOKEN=hf_...`, or as a secret in CI) or run `hf auth login` once to save it on this machine."
    )


def _to_publish_error(err: BaseException, *, what: str, repo_id: str, endpoint: str, redact: Callable[[str], str]) -> PublishError | None:
    """Map a non-retryable client error to a user-facing `PublishError` (None: not a user error)."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RevisionNotFoundError

    if isinstance(err, OfflineModeIsEnabled):
        return PublishError(f"cannot publish while offline mode is on (HF_HUB_OFFLINE is set): unset HF_HUB_OFFLINE to {what}.")
    status = _status(err)
    if status in (401, 403):
        verb = "rejected the token" if status == 401 else "refused access (the token may be read-only or lack rights on this namespace)"
        return PublishError(f"the Hub at {endpoint} {verb} while trying to {what} {repo_id} (HTTP {status}). {_auth_help(endpoint)}")
    if isinstance(err, RevisionNotFoundError):
        return PublishError(f"cannot {what} {repo_id}: revision not found on the Hub ({redact(describe_error(err))}).")
    if isinstance(err, HfHubHTTPError) and status is not None and 400 <= status < 500:
        return PublishError(f"the Hub refused to {what} {repo_id}: {redact(describe_error(err))}")
    return None


# --------------------------------------------------------------------------- publishing


def publish_folder(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
    max_attempts: int = 5,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    include_logs: bool = False,
) -> PublishResult:
    """Upload a trained model folder to the Hub as one commit (or one pull request with ``create_pr=True``).

    Creates the repo (``private`` only applies when it is created) and, if ``revision`` names a branch
    that does not exist, that branch (from main). Re-publishing identical files makes no commit
    (``changed=False``). ``include_logs`` also uploads the TensorBoard traces in ``runs/`` (`LOG_PATTERNS`).
    Raises `PublishError` (a `UserInputError`) for a bad folder or README,
    missing or rejected credentials and other refused requests; transient errors are retried
    ``max_attempts`` times with ``backoff * 2**attempt`` s between attempts, then re-raised.
    """
    # Everything local comes first, and nothing local is changed: no request before these pass.
    path = validate_folder(folder, include_logs)
    _validate_repo_id(repo_id)
    if create_pr and revision not in (None, "main"):
        raise PublishError(f"--create-pr opens a pull request against main; it cannot be combined with --revision {revision!r}.")
    if max_attempts < 1 or backoff < 0:
        raise PublishError("max_attempts must be >= 1 and the retry backoff >= 0.")
    if include_logs and not any((path / "runs").rglob("events.out.tfevents.*")):
        logger.warning("--include_logs: %s has no TensorBoard trace in runs/ (train with --report_to tensorboard)", path)
    card_text = card_to_upload(path, repo_id)
    resolved = check_can_publish(repo_id, token)

    from huggingface_hub import HfApi, constants

    endpoint = constants.ENDPOINT
    redact = _redactor(resolved)
    api = HfApi(token=resolved)
    message = commit_message or DEFAULT_COMMIT_MESSAGE

    def step(fn: Callable[[], T], what: str, retry_if: Callable[[BaseException], bool] = is_transient) -> T:
        try:
            return call_with_retries(
                fn, what=f"{what} {repo_id}", max_attempts=max_attempts, backoff=backoff, sleep=sleep, retry_if=retry_if, redact=redact
            )
        except Exception as err:
            mapped = _to_publish_error(err, what=what, repo_id=repo_id, endpoint=endpoint, redact=redact)
            if mapped is not None:
                raise mapped from None  # the client's traceback adds nothing for the user
            raise

    repo_url = str(step(lambda: api.create_repo(repo_id, private=private, exist_ok=True), "create the repo"))
    branch = revision or "main"
    if branch != "main" and not branch.startswith("refs/"):
        step(lambda: api.create_branch(repo_id, branch=branch, exist_ok=True), f"create branch {branch!r} in")
    info = step(lambda: api.repo_info(repo_id, revision=branch), "read the head of")
    if private and not info.private:
        logger.warning("%s already exists and is public: --private only applies when the repo is created.", repo_id)
    head_before = info.sha

    ignore = ignore_patterns(include_logs)
    with staged_folder(path, card_text, ignore) as upload_dir:
        upload = _Upload(
            api, upload_dir, repo_id, branch=branch, create_pr=create_pr, message=message, head_before=head_before, ignore=ignore
        )
        if create_pr:
            upload.prs_before = step(upload.pr_refs, "list pull requests of")
        commit = step(upload.attempt, "upload the folder to", retry_if=lambda err: is_transient(err) or _status(err) == CONFLICT_STATUS)

    pr_url = commit.pr_url or upload.pr_url
    changed = pr_url is not None if create_pr else commit.oid != head_before
    return PublishResult(repo_url=repo_url, commit_url=commit.commit_url, commit_oid=commit.oid, pr_url=pr_url, changed=changed)


OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
"""The variables that put huggingface_hub in offline mode (it reads them when imported)."""


def check_can_publish(repo_id: str | None, token: str | None = None, *, flag: str = "hf-crossenc publish") -> str:
    """What publishing needs that can be checked without a request: a well-formed `repo_id` (None: the Trainer's
    default, the output folder's name), offline mode off, and a token (`token`, else HF_TOKEN, else the saved login).
    Returns the token. Raises `PublishError` naming `flag`, the command or option that wants to publish."""
    from huggingface_hub import constants, get_token

    if repo_id is not None:
        _check_repo_id(repo_id)
    if constants.HF_HUB_OFFLINE:
        set_vars = [f"{name}={os.environ[name]}" for name in OFFLINE_VARS if os.environ.get(name)] or ["HF_HUB_OFFLINE"]
        names = " and ".join(value.split("=")[0] for value in set_vars)
        raise PublishError(
            f"{flag} cannot reach the Hub while offline mode is on ({', '.join(set_vars)}): unset {names} "
            f"(`unset {names.replace(' and ', ' ')}`, or drop it from the command line) and run it again."
        )
    resolved = token or get_token()
    if not resolved:
        raise PublishError(
            f"{flag}: no Hugging Face token found (HF_TOKEN is not set and no saved login). {_auth_help(constants.ENDPOINT)}"
        )
    return resolved


def check_push_to_hub(training_args: Any) -> None:
    """For a training job with ``--push_to_hub``: `check_can_publish` before anything is read, loaded or trained."""
    if getattr(training_args, "push_to_hub", False):
        check_can_publish(training_args.hub_model_id, training_args.hub_token, flag="--push_to_hub")


def card_to_upload(path: Path, repo_id: str) -> str | None:
    """The folder's README.md as it will be uploaded when publishing changes it (the repo id set into the snippets of a
    generated card), parsed as the Hub would; None when README.md is uploaded as it is (or there is none)."""
    from .model_card import card_with_model_id

    readme = path / "README.md"
    if not readme.is_file():
        return None
    text = card_with_model_id(readme.read_text(encoding="utf-8"), repo_id)
    if text is None:
        return None
    validate_card_text(text, f"{readme}, with the repo id {repo_id} set into it")
    logger.info("model card: the uploaded copy's usage snippets load %r (%s itself is left as it is)", repo_id, readme)
    return text


@contextlib.contextmanager
def staged_folder(path: Path, card_text: str | None, ignore: list[str]) -> Iterator[Path]:
    """The folder to upload: `path` itself, or, with a card to replace, a temporary folder of links to the files to upload
    and `card_text` as README.md (removed afterwards). `path` is never written to."""
    if card_text is None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="hf_crossenc_publish_") as tmp:
        staging = Path(tmp)
        for rel in upload_files(path, ignore):
            if rel != "README.md":
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                _link(path / rel, target)
        (staging / "README.md").write_text(card_text, encoding="utf-8")
        yield staging


def _link(source: Path, target: Path) -> None:
    """A symbolic link `target` -> `source`, or a copy where links cannot be made."""
    try:
        os.symlink(source.resolve(), target)
    except OSError as err:
        logger.debug("cannot link %s (%s): copying it for the upload", source, err)
        shutil.copy2(source, target)


def _check_repo_id(repo_id: str) -> None:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise PublishError(f"invalid repo id {repo_id!r}: {err}") from None


def _validate_repo_id(repo_id: str) -> None:
    _check_repo_id(repo_id)
    if repo_id.count("/") != 1:
        raise PublishError(f"invalid repo id {repo_id!r}: use NAMESPACE/NAME (your user name or an organization, then the model name).")


class _Upload:
    """One `upload_folder` commit, made retry-safe (see the module docstring)."""

    def __init__(
        self, api: Any, folder: Path, repo_id: str, *, branch: str, create_pr: bool, message: str, head_before: str, ignore: list[str]
    ) -> None:
        self.api, self.folder, self.repo_id = api, folder, repo_id
        self.branch, self.create_pr, self.message = branch, create_pr, message
        self.head_before = head_before
        self.prs_before: set[str] = set()
        self.pr_url: str | None = None
        self.pr_revision: str | None = None
        self.attempts = 0
        self.ignore_patterns = ignore

    def pr_refs(self) -> set[str]:
        refs = self.api.list_repo_refs(self.repo_id, include_pull_requests=True)
        return {ref.ref for ref in refs.pull_requests or []}

    def _find_our_pr(self) -> tuple[str, str] | None:
        """The pull request a failed attempt opened (new since we started, same title): (ref, url)."""
        new = sorted(
            self.pr_refs() - self.prs_before, key=lambda ref: int(ref.rsplit("/", 1)[-1]) if ref.rsplit("/", 1)[-1].isdigit() else -1
        )
        for ref in reversed(new):
            num = ref.rsplit("/", 1)[-1]
            if not num.isdigit():
                continue
            details = self.api.get_discussion_details(self.repo_id, int(num))
            if details.is_pull_request and details.title == self.message:
                return ref, details.url
        return None

    def attempt(self) -> Any:
        self.attempts += 1
        create_pr, revision = self.create_pr, self.branch
        if self.pr_url is not None:  # resuming into the PR a previous attempt opened
            create_pr, revision = False, self.pr_revision
        elif self.create_pr and self.attempts > 1:
            found = self._find_our_pr()
            if found is not None:
                self.pr_revision, self.pr_url = found
                logger.warning("Resuming the upload into the pull request opened by the failed attempt: %s", self.pr_url)
                create_pr, revision = False, self.pr_revision
        # Guard against duplicate commits: a replayed commit whose parent is no longer the head gets HTTP 412.
        parent = self.head_before if self.attempts == 1 else self.api.repo_info(self.repo_id, revision=revision).sha
        return self.api.upload_folder(
            repo_id=self.repo_id,
            folder_path=str(self.folder),
            commit_message=self.message,
            revision=None if create_pr else revision,
            create_pr=create_pr,
            parent_commit=parent,
            ignore_patterns=list(self.ignore_patterns),
        )
