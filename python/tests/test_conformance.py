"""The Python runner of the language-neutral conformance scenarios
(tests/conformance/README.md is the spec): every ``*.json`` in
tests/conformance/scenarios, found when the tests are collected, is one test case,
run step by step against the suite's 3-node cluster through the public ``kahuna``
API. Each SDK runs the same files, so a semantic rule is written once.

A scenario this runner cannot run as written (an unknown op, argument, result field,
matcher or error kind) fails; nothing is skipped."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

import kahuna

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_DIR = ROOT / "tests" / "conformance" / "scenarios"
CATALOGUE = ROOT / "proto" / "kahuna" / "v1" / "common.proto"

# The scenario files as parsed JSON: any JSON value.
Json = Any
Result = Dict[str, Json]

# One id per run, so a second run against the same cluster starts from fresh keys.
RUN_ID = uuid.uuid4().hex[:12]


def scenario_files(directory: Path) -> List[Path]:
    return sorted(directory.glob("*.json"))


def require_scenarios(files: List[Path], directory: Path) -> None:
    if not files:
        pytest.fail(f"no scenario (*.json) in {directory}: the conformance suite ran nothing", pytrace=False)


SCENARIOS = scenario_files(SCENARIO_DIR)


class ScenarioError(Exception):
    """The scenario cannot be run as written (a mistake in the file, not in the SDK)."""


def _catalogue() -> List[str]:
    """The error kinds' names, as the spec spells them (without ERROR_KIND_)."""
    names = re.findall(r"^\s*ERROR_KIND_([A-Z_]+)\s*=", CATALOGUE.read_text(), re.MULTILINE)
    if not names:
        raise AssertionError(f"no ERROR_KIND_ value in {CATALOGUE}")
    return names


KINDS = _catalogue()

# The SDK's one mapping from catalogue kind to exception class, read backwards: the
# kind of an error is the kind whose class it is (not a subclass: NotLeaderError is
# an UnavailableError, but its kind is NOT_LEADER).
KIND_OF: Dict[type, str] = {cls: kind for kind, cls in kahuna.ERRORS.items()}


def _kind(e: kahuna.KahunaError) -> str:
    # A KahunaError outside the table is one the SDK could not classify: the
    # catalogue calls that OTHER.
    return KIND_OF.get(type(e), "OTHER")


# --- arguments ----------------------------------------------------------------------------


def _str(args: Result, name: str, default: Optional[str] = None) -> str:
    v = args.get(name, default)
    if not isinstance(v, str):
        raise ScenarioError(f"argument {name!r} must be a string, got {v!r}")
    return v


def _int(args: Result, name: str, default: Optional[int] = None) -> int:
    v = args.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ScenarioError(f"argument {name!r} must be an integer, got {v!r}")
    return v


def _ttl(args: Result) -> Optional[float]:
    """``ttl_ms`` as the SDK's seconds (a float); 0 or absent: none. The core client
    rounds a duration up to whole milliseconds, so ms / 1000 arrives as ms exactly
    unless the float lies above it by a nanosecond (possible only at about a year's
    seconds; the scenarios' 31536000001 ms lies below)."""
    ms = _int(args, "ttl_ms", 0)
    return None if ms == 0 else ms / 1000.0


def _ephemeral(args: Result) -> bool:
    d = args.get("durability", "persistent")
    if d not in ("persistent", "ephemeral"):
        raise ScenarioError(f"durability must be persistent or ephemeral, got {d!r}")
    return bool(d == "ephemeral")


def _one_of(obj: Json, what: str, allowed: Tuple[str, ...]) -> Tuple[str, Json]:
    """The single key of a one-key object (a condition, a transaction operation)."""
    if not isinstance(obj, dict) or len(obj) != 1:
        raise ScenarioError(f"{what} must be an object with one of {allowed}, got {obj!r}")
    ((k, v),) = obj.items()
    if k not in allowed:
        raise ScenarioError(f"unknown {what} {k!r} (known: {allowed})")
    return k, v


def _keys(obj: Json, what: str, required: Tuple[str, ...], optional: Tuple[str, ...] = ()) -> Result:
    if not isinstance(obj, dict):
        raise ScenarioError(f"{what} must be an object, got {obj!r}")
    unknown = set(obj) - set(required) - set(optional)
    if unknown:
        raise ScenarioError(f"unknown key(s) {sorted(unknown)} in {what} (known: {required + optional})")
    missing = set(required) - set(obj)
    if missing:
        raise ScenarioError(f"{what} lacks {sorted(missing)}")
    return obj


def _text(b: bytes) -> str:
    return b.decode("utf-8")


# --- expectations -------------------------------------------------------------------------


def _mismatch(want: Json, got: Json) -> Optional[str]:
    """Why ``got`` is not what ``want`` asks for, or None when it is. Types are compared
    strictly: true is not 1."""
    if want is None:
        return None if got is None else "expected absent"
    if isinstance(want, dict):
        if len(want) != 1 or next(iter(want)) not in ("gt", "gte"):
            raise ScenarioError(f"unknown matcher {want!r} (known: {{'gt': N}}, {{'gte': N}})")
        ((op, bound),) = want.items()
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise ScenarioError(f"{op} needs a number, got {bound!r}")
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return "expected a number"
        ok = got > bound if op == "gt" else got >= bound
        return None if ok else f"expected {op} {bound}"
    if isinstance(want, list):
        if not isinstance(got, list):
            return "expected a list"
        if len(want) != len(got):
            return f"expected {len(want)} items, got {len(got)}"
        for i, (w, g) in enumerate(zip(want, got)):
            why = _mismatch(w, g)
            if why is not None:
                return f"item {i}: {why}"
        return None
    if isinstance(want, bool) or isinstance(got, bool):
        return None if type(want) is type(got) and want == got else "different value"
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):  # 1 == 1.0
        return None if want == got else "different value"
    return None if type(want) is type(got) and want == got else "different value"


# --- the runner ---------------------------------------------------------------------------


class Runner:
    def __init__(self, client: kahuna.Client, prefix: str) -> None:
        self.c = client
        self.prefix = prefix
        self.vars: Dict[str, Json] = {}
        self.handles: Dict[str, kahuna.Lock] = {}
        # Locks taken without `as`: still held (they keep others out) until the end.
        self.unnamed: List[kahuna.Lock] = []
        # op -> (its arguments, its result fields, how to run it)
        self.ops: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...], Callable[[Result], Result]]] = {
            "set": (
                ("key", "value", "ttl_ms", "durability", "condition", "fence"),
                ("succeeded", "revision", "version"),
                self.set,
            ),
            "get": (("key", "durability"), ("found", "value", "version", "revision", "create_revision"), self.get),
            "delete": (("key", "durability", "condition"), ("deleted",), self.delete),
            "exists": (("key", "durability"), ("exists",), self.exists),
            "extend": (("key", "ttl_ms", "durability"), ("extended",), self.extend),
            "scan": (("prefix", "limit"), ("keys", "values"), self.scan),
            "history": (("key",), ("values",), self.history),
            "txn": (("compare", "then", "else"), ("succeeded", "gets"), self.txn),
            "lock": (("name", "ttl_ms", "durability", "as"), ("acquired", "token"), self.lock),
            "extend_lock": (("handle", "ttl_ms"), (), self.extend_lock),
            "unlock": (("handle",), (), self.unlock),
            "lock_info": (("name", "durability"), ("held", "token"), self.lock_info),
            "seq_next": (("name", "count", "idempotency_key"), ("first", "count"), self.seq_next),
            "seq_peek": (("name",), ("next",), self.seq_peek),
            "sleep": (("ms",), (), self.sleep),
        }

    # {p}, ${var} and {"repeat"} ------------------------------------------------------------

    def resolve(self, v: Json) -> Json:
        if isinstance(v, str):
            if v.startswith("${") and v.endswith("}"):
                name = v[2:-1]
                if name not in self.vars:
                    raise ScenarioError(f"variable {name!r} is used before a step saved it")
                return self.vars[name]
            return v.replace("{p}", self.prefix)
        if isinstance(v, list):
            return [self.resolve(i) for i in v]
        if isinstance(v, dict):
            if "repeat" in v:
                r = _keys(v, "a repeat string", ("repeat", "times"))
                s, n = self.resolve(r["repeat"]), self.resolve(r["times"])
                if not isinstance(s, str) or isinstance(n, bool) or not isinstance(n, int) or n < 0:
                    raise ScenarioError(f"repeat needs a string and a non-negative count, got {v!r}")
                return s * n
            return {k: self.resolve(i) for k, i in v.items()}
        return v

    # one step -------------------------------------------------------------------------------

    def step(self, step: Json) -> None:
        if not isinstance(step, dict):
            raise ScenarioError(f"a step must be an object, got {step!r}")
        op = step.get("op")
        if op not in self.ops:
            raise ScenarioError(f"unknown op {op!r} (known: {sorted(self.ops)})")
        known_args, fields, run = self.ops[op]
        args: Result = {}
        for k, v in step.items():
            if k in ("op", "expect", "save"):
                continue
            if k not in known_args:
                raise ScenarioError(f"unknown argument {k!r} of {op} (known: {known_args})")
            args[k] = self.resolve(v)
        expect = self.resolve(step.get("expect", {}))
        if not isinstance(expect, dict):
            raise ScenarioError(f"expect must be an object, got {expect!r}")
        save = step.get("save", {})
        if not isinstance(save, dict) or not all(isinstance(f, str) for f in save.values()):
            raise ScenarioError(f"save must map variable names to result fields, got {save!r}")
        for f in [*(k for k in expect if k != "error"), *save.values()]:
            if f not in fields:
                raise ScenarioError(f"{op} has no result field {f!r} (its fields: {fields})")

        if "error" in expect:
            kind = expect["error"]
            if len(expect) != 1 or save:
                raise ScenarioError("an expected error stands alone: no other field, nothing to save")
            if kind not in KINDS:
                raise ScenarioError(f"{kind!r} is not an error kind of {CATALOGUE.name}")
            try:
                result = run(args)
            except kahuna.KahunaError as e:
                got = _kind(e)
                assert got == kind, f"expected error {kind}, got {got} ({type(e).__name__}: {e})"
                return
            raise AssertionError(f"expected error {kind}, but it succeeded with {result}")

        try:
            result = run(args)
        except kahuna.KahunaError as e:
            raise AssertionError(f"expected {expect or 'success'}, got error {_kind(e)} ({type(e).__name__}: {e})")
        for field, want in expect.items():
            why = _mismatch(want, result.get(field))
            if why is not None:
                raise AssertionError(
                    f"{field}: expected {want!r}, got {result.get(field, '(absent)')!r}: {why} (result {result})"
                )
        for var, field in save.items():
            if field not in result:
                raise AssertionError(f"cannot save {field!r}: absent from the result {result}")
            self.vars[var] = result[field]

    def release_all(self) -> None:
        """Locks a scenario still holds (it failed half-way) go back now, not at their TTL."""
        for lock in [*self.handles.values(), *self.unnamed]:
            if lock.acquired:
                try:
                    lock.release()
                except kahuna.KahunaError:
                    pass
        self.handles.clear()
        self.unnamed.clear()

    # the operations, each through the public API ------------------------------------------

    def set(self, a: Result) -> Result:
        cond: Dict[str, Any] = {}
        if "condition" in a:
            k, v = _one_of(a["condition"], "set condition", ("not_exists", "exists", "value", "revision"))
            if k in ("not_exists", "exists"):
                if v is not True:
                    raise ScenarioError(f"condition {k} must be true, got {v!r}")
                cond = {f"if_{k}": True}
            elif k == "value":
                cond = {"if_value": _str({k: v}, k)}
            else:
                cond = {"if_revision": _int({k: v}, k)}
        fence = None
        if "fence" in a:
            f = _keys(a["fence"], "fence", ("name", "token"))
            # The spec's fence names a lock without a tier: the persistent lock, as the
            # core client's Fence::new.
            fence = kahuna.Fence(_str(f, "name"), _int(f, "token"))
        r = self.c.set(
            _str(a, "key"), _str(a, "value"), ttl=_ttl(a), ephemeral=_ephemeral(a), fence=fence, **cond
        )
        out: Result = {"succeeded": r.succeeded}
        if r.succeeded:
            if r.kv is None:
                raise AssertionError(f"a set that succeeded has no key: {r}")
            out.update(revision=r.kv.revision, version=r.kv.version)
        return out

    def get(self, a: Result) -> Result:
        kv = self.c.get(_str(a, "key"), ephemeral=_ephemeral(a))
        if kv is None:
            return {"found": False}
        return {
            "found": True,
            "value": _text(kv.value),
            "version": kv.version,
            "revision": kv.revision,
            "create_revision": kv.create_revision,
        }

    def delete(self, a: Result) -> Result:
        cond: Dict[str, Any] = {}
        if "condition" in a:
            k, v = _one_of(a["condition"], "delete condition", ("value", "revision"))
            cond = {"if_value": _str({k: v}, k)} if k == "value" else {"if_revision": _int({k: v}, k)}
        r = self.c.delete(_str(a, "key"), ephemeral=_ephemeral(a), **cond)
        return {"deleted": r.deleted}

    def exists(self, a: Result) -> Result:
        return {"exists": self.c.exists(_str(a, "key"), ephemeral=_ephemeral(a)) is not None}

    def extend(self, a: Result) -> Result:
        r = self.c.extend(_str(a, "key"), _ttl(a), ephemeral=_ephemeral(a))
        return {"extended": r.succeeded}

    def scan(self, a: Result) -> Result:
        # Page by page with the caller's page size, so a scan across pages is what runs.
        limit = _int(a, "limit", 0)
        kvs: List[kahuna.KeyValue] = []
        token: Optional[bytes] = None
        while True:
            page = self.c.scan(_str(a, "prefix"), limit=limit, page_token=token)
            if limit and len(page.kvs) > limit:
                raise AssertionError(f"a page of {len(page.kvs)} keys, more than the limit {limit}")
            kvs.extend(page.kvs)
            if page.next_page_token is None:
                break
            token = page.next_page_token
        return {"keys": [kv.key for kv in kvs], "values": [_text(kv.value) for kv in kvs]}

    def history(self, a: Result) -> Result:
        h = self.c.history(_str(a, "key"))
        return {"values": [_text(e.kv.value) for e in h.events if e.kind == "put"]}

    def txn(self, a: Result) -> Result:
        compares = a.get("compare", [])
        if not isinstance(compares, list):
            raise ScenarioError(f"compare must be a list, got {compares!r}")
        whens: List[kahuna.Compare] = []
        for cmp in compares:
            if not isinstance(cmp, dict) or "key" not in cmp:
                raise ScenarioError(f"a compare needs a key, got {cmp!r}")
            key = _str(cmp, "key")
            k, v = _one_of({x: y for x, y in cmp.items() if x != "key"}, "compare", ("value", "version", "revision"))
            if k == "value":
                whens.append(kahuna.Compare.value(key, "==", _str({k: v}, k)))
            elif k == "version":
                whens.append(kahuna.Compare.version(key, "==", _int({k: v}, k)))
            else:
                whens.append(kahuna.Compare.mod_revision(key, "==", _int({k: v}, k)))

        def branch(name: str) -> Tuple[List[kahuna.Op], List[bool]]:
            items = a.get(name, [])
            if not isinstance(items, list):
                raise ScenarioError(f"{name} must be a list, got {items!r}")
            ops: List[kahuna.Op] = []
            is_get: List[bool] = []
            for item in items:
                kind, body = _one_of(item, "transaction operation", ("set", "delete", "get"))
                if kind == "set":
                    s = _keys(body, "a transaction set", ("key", "value"))
                    ops.append(kahuna.Op.set(_str(s, "key"), _str(s, "value")))
                elif kind == "delete":
                    ops.append(kahuna.Op.delete(_str(_keys(body, "a transaction delete", ("key",)), "key")))
                else:
                    ops.append(kahuna.Op.get(_str(_keys(body, "a transaction get", ("key",)), "key")))
                is_get.append(kind == "get")
            return ops, is_get

        then_ops, then_gets = branch("then")
        else_ops, else_gets = branch("else")
        r = self.c.txn().when(*whens).then(*then_ops).otherwise(*else_ops).commit()
        gets = then_gets if r.succeeded else else_gets
        if len(r.results) != len(gets):
            raise AssertionError(f"{len(r.results)} results for a branch of {len(gets)} operations: {r}")
        read = [None if o.kv is None else _text(o.kv.value) for o, g in zip(r.results, gets) if g]
        return {"succeeded": r.succeeded, "gets": read}

    def lock(self, a: Result) -> Result:
        handle = _str(a, "as", "")
        if handle in self.handles:
            raise ScenarioError(f"handle {handle!r} is already in use")
        ttl = _ttl(a)
        # wait=0: one attempt. No owner given: the SDK makes a new one for every lock
        # call, so each step is its own owner.
        lock = self.c.lock(_str(a, "name"), ttl=10.0 if ttl is None else ttl, wait=0, ephemeral=_ephemeral(a))
        if handle:
            self.handles[handle] = lock
        else:
            self.unnamed.append(lock)
        out: Result = {"acquired": lock.acquired}
        if lock.acquired:
            out["token"] = lock.fencing_token
        return out

    def _handle(self, a: Result) -> kahuna.Lock:
        name = _str(a, "handle")
        if name not in self.handles:
            raise ScenarioError(f"no lock handle {name!r} (a lock step's `as` names one)")
        return self.handles[name]

    def extend_lock(self, a: Result) -> Result:
        self._handle(a).extend(_ttl(a))
        return {}

    def unlock(self, a: Result) -> Result:
        lock = self._handle(a)
        del self.handles[_str(a, "handle")]
        if not lock.release():
            raise AssertionError("unlock: the lock was not held by this handle")
        return {}

    def lock_info(self, a: Result) -> Result:
        info = self.c.lock_info(_str(a, "name"), ephemeral=_ephemeral(a))
        return {"held": False} if info is None else {"held": True, "token": info.fencing_token}

    def seq_next(self, a: Result) -> Result:
        key = a.get("idempotency_key")
        if key is not None and not isinstance(key, str):
            raise ScenarioError(f"idempotency_key must be a string, got {key!r}")
        r = self.c.next(_str(a, "name"), _int(a, "count", 1), idempotency_key=key)
        return {"first": r.first, "count": r.count}

    def seq_peek(self, a: Result) -> Result:
        return {"next": self.c.peek_sequence(_str(a, "name"))}

    def sleep(self, a: Result) -> Result:
        time.sleep(_int(a, "ms") / 1000.0)
        return {}


def run_scenario(client: kahuna.Client, path: Path) -> None:
    scenario = json.loads(path.read_text(encoding="utf-8"))
    _keys(scenario, f"scenario {path.name}", ("name", "steps"), ("description",))
    name, steps = scenario["name"], scenario["steps"]
    if not isinstance(name, str) or not name or not isinstance(steps, list) or not steps:
        raise ScenarioError(f"{path.name}: a scenario needs a name and at least one step")
    runner = Runner(client, f"conf/python/{RUN_ID}/{name}")
    try:
        for i, step in enumerate(steps):
            op = step.get("op") if isinstance(step, dict) else None
            failure = None
            try:
                runner.step(step)
            except ScenarioError as e:
                failure = f"cannot be run: {e}"
            except AssertionError as e:
                failure = f"failed: {e}"
            except Exception as e:  # the SDK refused the call outside its typed errors
                failure = f"raised {type(e).__name__}: {e}"
            if failure is not None:
                pytest.fail(f"scenario {name} ({path.name}) step {i} ({op}) {failure}", pytrace=False)
    finally:
        runner.release_all()


@pytest.mark.parametrize(
    "path",
    # An empty directory gives one case that fails, not a parameter set pytest skips.
    SCENARIOS or [pytest.param(None, id="no-scenario")],
    ids=lambda p: p.stem if isinstance(p, Path) else str(p),
)
def test_scenario(client: kahuna.Client, path: Optional[Path]) -> None:
    if path is None:
        require_scenarios([], SCENARIO_DIR)
        return
    run_scenario(client, path)


def test_scenarios_found() -> None:
    require_scenarios(SCENARIOS, SCENARIO_DIR)


# --- the runner itself: a scenario it cannot run or that does not hold fails ---------------

_SET_A = {"op": "set", "key": "{p}/a", "value": "1", "expect": {"succeeded": True}, "save": {"r": "revision"}}

BROKEN: Dict[str, Tuple[List[Json], str]] = {
    "unknown op": ([{"op": "frobnicate", "key": "{p}/a"}], r"step 0 \(frobnicate\) cannot be run: unknown op"),
    "unknown argument": (
        [{"op": "get", "key": "{p}/a", "consistency": "stale"}],
        r"step 0 \(get\) cannot be run: unknown argument 'consistency'",
    ),
    "unknown nested argument": (
        [{"op": "set", "key": "{p}/a", "value": "1", "fence": {"name": "l", "token": 1, "tier": "x"}}],
        r"unknown key\(s\) \['tier'\] in fence",
    ),
    "unknown result field": (
        [{"op": "get", "key": "{p}/a", "expect": {"found": False, "ttl": 5}}],
        r"get has no result field 'ttl'",
    ),
    "unknown error kind": (
        [{"op": "set", "key": "", "value": "x", "expect": {"error": "BAD_INPUT"}}],
        r"'BAD_INPUT' is not an error kind",
    ),
    "unknown matcher": (
        [_SET_A, {"op": "get", "key": "{p}/a", "expect": {"version": {"lt": 5}}}],
        r"step 1 \(get\) cannot be run: unknown matcher",
    ),
    "unset variable": (
        [{"op": "set", "key": "{p}/a", "value": "1", "condition": {"revision": "${nope}"}}],
        r"variable 'nope' is used before a step saved it",
    ),
    "unknown durability": (
        [{"op": "get", "key": "{p}/a", "durability": "volatile"}],
        r"durability must be persistent or ephemeral",
    ),
    "wrong value": (
        [_SET_A, {"op": "get", "key": "{p}/a", "expect": {"found": True, "value": "2"}}],
        r"step 1 \(get\) failed: value: expected '2', got '1'",
    ),
    "true is not 1": (
        [{"op": "set", "key": "{p}/a", "value": "1", "expect": {"succeeded": 1}}],
        r"succeeded: expected 1, got True",
    ),
    "gt": (
        [_SET_A, {"op": "get", "key": "{p}/a", "expect": {"revision": {"gt": "${r}"}}}],
        r"step 1 \(get\) failed: revision: expected \{'gt': \d+\}",
    ),
    "null is absent": (
        [_SET_A, {"op": "txn", "then": [{"get": {"key": "{p}/a"}}], "expect": {"gets": [None]}}],
        r"gets: expected \[None\], got \['1'\]: item 0: expected absent",
    ),
    "another error kind": (
        [{"op": "set", "key": "", "value": "x", "expect": {"error": "FENCED"}}],
        r"step 0 \(set\) failed: expected error FENCED, got INVALID_ARGUMENT \(InvalidArgumentError",
    ),
    "no error": (
        [{"op": "set", "key": "{p}/a", "value": "x", "expect": {"error": "INVALID_ARGUMENT"}}],
        r"expected error INVALID_ARGUMENT, but it succeeded",
    ),
    "an error without expect": (
        [{"op": "set", "key": {"repeat": "k", "times": 4097}, "value": "x"}],
        r"step 0 \(set\) failed: expected success, got error INVALID_ARGUMENT",
    ),
    "unlock of a lock not held": (
        [
            {"op": "lock", "name": "{p}/l", "ttl_ms": 30000, "as": "a", "expect": {"acquired": True}},
            {"op": "lock", "name": "{p}/l", "ttl_ms": 30000, "as": "b", "expect": {"acquired": False}},
            {"op": "unlock", "handle": "b"},
        ],
        r"step 2 \(unlock\) failed: unlock: the lock was not held",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_runner_fails_on(client: kahuna.Client, tmp_path: Path, case: str) -> None:
    steps, message = BROKEN[case]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"name": "broken", "steps": steps}))
    with pytest.raises(pytest.fail.Exception, match=message):
        run_scenario(client, path)


def test_runner_fails_on_an_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a scenario")
    with pytest.raises(pytest.fail.Exception, match="no scenario"):
        require_scenarios(scenario_files(tmp_path), tmp_path)
