//! The Rust runner of the language-neutral conformance scenarios
//! (tests/conformance/README.md): every scenario file, against one real 3-member
//! cluster, through the core client's public API. Each SDK has a runner of the same
//! files, so a semantic rule is written once.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use kahuna_client::{
    Client, Compare, CompareOp, Consistency, DeleteCondition, DeleteOptions, Durability, Error, EventKind, Fence,
    GetOptions, LockGuard, LockOptions, ScanOptions, SetCondition, SetOptions, TxnOp,
};
use kahuna_testkit::Cluster;
use serde_json::{json, Map, Value};

fn scenario_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/scenarios")
}

/// The arguments each operation takes, besides `op`, `expect` and `save`.
fn known_args(op: &str) -> Option<&'static [&'static str]> {
    Some(match op {
        "set" => &["key", "value", "ttl_ms", "durability", "condition", "fence"],
        "get" | "exists" => &["key", "durability"],
        "delete" => &["key", "durability", "condition"],
        "extend" => &["key", "ttl_ms", "durability"],
        "scan" => &["prefix", "limit"],
        "history" => &["key"],
        "txn" => &["compare", "then", "else"],
        "lock" => &["name", "ttl_ms", "durability", "as"],
        "extend_lock" => &["handle", "ttl_ms"],
        "unlock" => &["handle"],
        "lock_info" => &["name", "durability"],
        "seq_next" => &["name", "count", "idempotency_key"],
        "seq_peek" => &["name"],
        "sleep" => &["ms"],
        _ => return None,
    })
}

struct Runner<'a> {
    client: &'a Client,
    prefix: String,
    vars: HashMap<String, Value>,
    handles: HashMap<String, LockGuard>,
}

type Outcome = Result<Map<String, Value>, Error>;

impl Runner<'_> {
    /// `{p}`, `${var}` and `{"repeat"}` resolved, everywhere in `v`.
    fn resolve(&self, v: &Value) -> Result<Value, String> {
        Ok(match v {
            Value::String(s) => match s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
                Some(var) => self
                    .vars
                    .get(var)
                    .cloned()
                    .ok_or(format!("variable {var} is not set"))?,
                None => Value::String(s.replace("{p}", &self.prefix)),
            },
            Value::Array(items) => Value::Array(items.iter().map(|i| self.resolve(i)).collect::<Result<_, _>>()?),
            Value::Object(o) if o.contains_key("repeat") => {
                let s = o["repeat"].as_str().ok_or("repeat is not a string")?;
                let n = o.get("times").and_then(Value::as_u64).ok_or("repeat without times")?;
                Value::String(s.repeat(n as usize))
            }
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| Ok((k.clone(), self.resolve(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }

    async fn step(&mut self, step: &Map<String, Value>) -> Result<(), String> {
        let op = step.get("op").and_then(Value::as_str).ok_or("a step without op")?;
        let known = known_args(op).ok_or(format!("unknown op {op:?}"))?;
        let mut args = Map::new();
        for (k, v) in step {
            match k.as_str() {
                "op" | "expect" | "save" => {}
                k if known.contains(&k) => {
                    args.insert(k.to_owned(), self.resolve(v)?);
                }
                other => return Err(format!("unknown argument {other:?} of {op}")),
            }
        }
        let outcome = self.run(op, &args).await?;
        let expect = match step.get("expect") {
            Some(e) => self.resolve(e)?,
            None => json!({}),
        };
        let expect = expect.as_object().ok_or("expect is not an object")?;
        let result = match (outcome, expect.get("error")) {
            (Err(e), Some(kind)) if kind.as_str() == Some(e.kind().name()) => return Ok(()),
            (Err(e), _) => return Err(format!("failed with {} ({e}); expected {expect:?}", e.kind().name())),
            (Ok(r), Some(kind)) => return Err(format!("expected error {kind}, got {r:?}")),
            (Ok(r), None) => r,
        };
        for (field, want) in expect {
            let got = result.get(field).cloned().unwrap_or(Value::Null);
            if !matches(want, &got) {
                return Err(format!("{field}: expected {want}, got {got} (result {result:?})"));
            }
        }
        if let Some(save) = step.get("save").and_then(Value::as_object) {
            for (var, field) in save {
                let field = field.as_str().ok_or("save maps names to field names")?;
                let v = result.get(field).cloned().ok_or(format!("no field {field} to save"))?;
                self.vars.insert(var.clone(), v);
            }
        }
        Ok(())
    }

    async fn run(&mut self, op: &str, a: &Map<String, Value>) -> Result<Outcome, String> {
        let c = self.client;
        let s = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let n = |k: &str| a.get(k).and_then(Value::as_u64);
        let ttl = n("ttl_ms").filter(|t| *t > 0).map(Duration::from_millis);
        let durability = match a.get("durability").and_then(Value::as_str) {
            None | Some("persistent") => Durability::Persistent,
            Some("ephemeral") => Durability::Ephemeral,
            Some(other) => return Err(format!("unknown durability {other:?}")),
        };
        let condition = a.get("condition").and_then(Value::as_object);
        Ok(match op {
            "set" => {
                let condition = match condition {
                    None => SetCondition::Always,
                    Some(c) if c.get("not_exists") == Some(&json!(true)) => SetCondition::IfNotExists,
                    Some(c) if c.get("exists") == Some(&json!(true)) => SetCondition::IfExists,
                    Some(c) if c.contains_key("value") => {
                        SetCondition::IfValue(c["value"].as_str().unwrap_or_default().as_bytes().to_vec())
                    }
                    Some(c) if c.contains_key("revision") => {
                        SetCondition::IfRevision(c["revision"].as_u64().ok_or("revision is not a number")?)
                    }
                    Some(other) => return Err(format!("unknown set condition {other:?}")),
                };
                let fence = match a.get("fence") {
                    None => None,
                    Some(f) => Some(Fence {
                        resource: f["name"].as_str().ok_or("fence without name")?.to_owned(),
                        token: f["token"].as_u64().ok_or("fence without token")?,
                        durability: Durability::Persistent,
                    }),
                };
                let options = SetOptions {
                    ttl,
                    condition,
                    durability,
                    fence,
                };
                c.set_with(&s("key"), s("value"), options).await.map(|r| {
                    let mut m = Map::new();
                    m.insert("succeeded".into(), json!(r.succeeded));
                    if let (true, Some(kv)) = (r.succeeded, &r.kv) {
                        m.insert("revision".into(), json!(kv.mod_revision));
                        m.insert("version".into(), json!(kv.version));
                    }
                    m
                })
            }
            "get" => {
                let options = GetOptions {
                    durability,
                    ..GetOptions::default()
                };
                c.get_with(&s("key"), options).await.map(|kv| {
                    let mut m = Map::new();
                    m.insert("found".into(), json!(kv.is_some()));
                    if let Some(kv) = kv {
                        m.insert("value".into(), json!(String::from_utf8_lossy(&kv.value)));
                        m.insert("version".into(), json!(kv.version));
                        m.insert("revision".into(), json!(kv.mod_revision));
                        m.insert("create_revision".into(), json!(kv.create_revision));
                    }
                    m
                })
            }
            "delete" => {
                let condition = match condition {
                    None => DeleteCondition::Always,
                    Some(c) if c.contains_key("value") => {
                        DeleteCondition::IfValue(c["value"].as_str().unwrap_or_default().as_bytes().to_vec())
                    }
                    Some(c) if c.contains_key("revision") => {
                        DeleteCondition::IfRevision(c["revision"].as_u64().ok_or("revision is not a number")?)
                    }
                    Some(other) => return Err(format!("unknown delete condition {other:?}")),
                };
                let options = DeleteOptions {
                    condition,
                    durability,
                    fence: None,
                };
                c.delete_with(&s("key"), options)
                    .await
                    .map(|r| one("deleted", json!(r.deleted)))
            }
            "exists" => c
                .exists_with(&s("key"), Consistency::Linearizable, durability)
                .await
                .map(|r| one("exists", json!(r.is_some()))),
            "extend" => c
                .extend_with(&s("key"), ttl, durability)
                .await
                .map(|r| one("extended", json!(r.succeeded))),
            "scan" => {
                let options = ScanOptions {
                    limit: n("limit").unwrap_or(0) as u32,
                    ..ScanOptions::default()
                };
                c.scan_all(&s("prefix"), options).await.map(|kvs| {
                    let mut m = Map::new();
                    m.insert("keys".into(), kvs.iter().map(|kv| json!(kv.key)).collect());
                    m.insert(
                        "values".into(),
                        kvs.iter().map(|kv| json!(String::from_utf8_lossy(&kv.value))).collect(),
                    );
                    m
                })
            }
            "history" => c.history(&s("key"), 0).await.map(|h| {
                let values = h
                    .events
                    .iter()
                    .filter(|e| e.kind == EventKind::Put)
                    .map(|e| json!(String::from_utf8_lossy(&e.kv.value)))
                    .collect();
                one("values", values)
            }),
            "txn" => {
                let mut txn = c.txn();
                for cmp in a.get("compare").and_then(Value::as_array).into_iter().flatten() {
                    let key = cmp["key"].as_str().ok_or("compare without key")?;
                    txn = txn.when(if let Some(v) = cmp.get("value") {
                        Compare::value(key, CompareOp::Equal, v.as_str().unwrap_or_default())
                    } else if let Some(v) = cmp.get("version").and_then(Value::as_u64) {
                        Compare::version(key, CompareOp::Equal, v)
                    } else if let Some(r) = cmp.get("revision").and_then(Value::as_u64) {
                        Compare::mod_revision(key, CompareOp::Equal, r)
                    } else {
                        return Err(format!("unknown compare {cmp}"));
                    });
                }
                let mut gets = (Vec::new(), Vec::new());
                for (branch, is_then) in [("then", true), ("else", false)] {
                    for (i, op) in a
                        .get(branch)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        let op = txn_op(op)?;
                        if op.1 {
                            if is_then { &mut gets.0 } else { &mut gets.1 }.push(i);
                        }
                        txn = if is_then { txn.then(op.0) } else { txn.otherwise(op.0) };
                    }
                }
                txn.commit().await.map(|r| {
                    let which = if r.succeeded { &gets.0 } else { &gets.1 };
                    let read: Vec<Value> = which
                        .iter()
                        .map(|i| match r.results.get(*i).and_then(|o| o.kv.as_ref()) {
                            Some(kv) => json!(String::from_utf8_lossy(&kv.value)),
                            None => Value::Null,
                        })
                        .collect();
                    let mut m = one("succeeded", json!(r.succeeded));
                    m.insert("gets".into(), Value::Array(read));
                    m
                })
            }
            "lock" => {
                let options = LockOptions {
                    ttl: Duration::from_millis(n("ttl_ms").unwrap_or(30_000)),
                    wait: Duration::ZERO,
                    durability,
                    ..LockOptions::default()
                };
                match c.lock(&s("name"), options).await {
                    Ok(guard) => {
                        let mut m = one("acquired", json!(guard.is_acquired()));
                        if let Some(t) = guard.fencing_token() {
                            m.insert("token".into(), json!(t));
                        }
                        self.handles.insert(s("as"), guard);
                        Ok(m)
                    }
                    Err(e) => Err(e),
                }
            }
            "extend_lock" => {
                let guard = self.handles.get(&s("handle")).ok_or("no such handle")?;
                guard
                    .extend(Some(Duration::from_millis(n("ttl_ms").unwrap_or(30_000))))
                    .await
                    .map(|()| Map::new())
            }
            "unlock" => {
                let guard = self.handles.remove(&s("handle")).ok_or("no such handle")?;
                match guard.release().await {
                    Ok(true) => Ok(Map::new()),
                    Ok(false) => Err(Error::LockNotHeld("the lock was not held when released".into())),
                    Err(e) => Err(e),
                }
            }
            "lock_info" => c.lock_info(&s("name"), durability).await.map(|info| {
                let mut m = one("held", json!(info.is_some()));
                if let Some(i) = info {
                    m.insert("token".into(), json!(i.fencing_token));
                }
                m
            }),
            "seq_next" => {
                let key = a.get("idempotency_key").and_then(Value::as_str);
                c.next(&s("name"), n("count").unwrap_or(0), key).await.map(|r| {
                    let mut m = one("first", json!(r.first));
                    m.insert("count".into(), json!(r.count));
                    m
                })
            }
            "seq_peek" => c.peek_sequence(&s("name")).await.map(|next| one("next", json!(next))),
            "sleep" => {
                tokio::time::sleep(Duration::from_millis(n("ms").unwrap_or(0))).await;
                Ok(Map::new())
            }
            other => return Err(format!("unknown op {other:?}")),
        })
    }
}

/// A transaction branch's operation, and whether it is a get.
fn txn_op(op: &Value) -> Result<(TxnOp, bool), String> {
    let key = |v: &Value| v["key"].as_str().map(str::to_owned).ok_or(format!("no key in {v}"));
    if let Some(s) = op.get("set") {
        Ok((TxnOp::set(&key(s)?, s["value"].as_str().unwrap_or_default()), false))
    } else if let Some(d) = op.get("delete") {
        Ok((TxnOp::delete(&key(d)?), false))
    } else if let Some(g) = op.get("get") {
        Ok((TxnOp::get(&key(g)?), true))
    } else {
        Err(format!("unknown transaction operation {op}"))
    }
}

fn one(k: &str, v: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(k.into(), v);
    m
}

/// Whether `got` is what `want` asks for: equal, or `{"gt"}` / `{"gte"}` a number.
fn matches(want: &Value, got: &Value) -> bool {
    match want.as_object() {
        Some(o) if o.contains_key("gt") || o.contains_key("gte") => {
            let (Some(g), Some(bound)) = (got.as_u64(), o.get("gt").or(o.get("gte")).and_then(Value::as_u64)) else {
                return false;
            };
            if o.contains_key("gt") {
                g > bound
            } else {
                g >= bound
            }
        }
        _ => want == got,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_conformance_scenario_passes() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenario_dir())
        .expect("tests/conformance/scenarios")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenario in {}", scenario_dir().display());
    let cluster = Cluster::start(3, "rocksdb", &[]).await;
    let client = common::client(&cluster).await;
    let run_id = format!("{:08x}", rand::random::<u32>());
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read scenario");
        let scenario: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let name = scenario["name"].as_str().expect("name").to_owned();
        let mut runner = Runner {
            client: &client,
            prefix: format!("conf/rust/{run_id}/{name}"),
            vars: HashMap::new(),
            handles: HashMap::new(),
        };
        let steps = scenario["steps"].as_array().expect("steps");
        let mut failed = None;
        for (i, step) in steps.iter().enumerate() {
            let step = step.as_object().expect("a step is an object");
            if let Err(e) = runner.step(step).await {
                failed = Some(format!("{name} step {i} ({}): {e}", step["op"]));
                break;
            }
        }
        // Locks a failed scenario still holds are released, not left to their TTL.
        for (_, guard) in runner.handles.drain() {
            let _ = guard.release().await;
        }
        eprintln!("conformance {name}: {}", if failed.is_some() { "FAIL" } else { "ok" });
        failures.extend(failed);
    }
    assert!(
        failures.is_empty(),
        "{} scenario(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
